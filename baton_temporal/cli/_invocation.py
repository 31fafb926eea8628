"""How to run ``baton`` again, for the commands the CLI prints for people to paste.

``make demo`` runs ``.venv/bin/baton`` without the virtualenv on ``PATH``, so a printed
``baton stats steps ID`` would fail with "command not found". Commands are printed with
the program as this process was started instead: plain ``baton`` when that name on
``PATH`` is this very program, else the path it was started by (``.venv/bin/baton``,
relative to the directory the user is in), else ``python -m baton_temporal.cli``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["activate_hint", "baton_command"]

_PROGRAM_NAMES = ("baton", "baton.exe")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _started_as() -> str | None:
    """The path of the ``baton`` script this process runs, as it was started (or None
    when this process is not the ``baton`` script: ``python -m``, or a caller of main)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if Path(argv0).name in _PROGRAM_NAMES else None


def baton_command() -> str:
    """The shell words that run this ``baton`` from the user's current directory.

    Example::

        print(f"follow it:  {baton_command()} status {workflow_id} --watch")
        # "baton status ..." with the virtualenv active, ".venv/bin/baton status ..." from
        # `make demo`
    """
    started = _started_as()
    if started is not None:
        on_path = shutil.which("baton")
        if on_path and _same_file(on_path, started):
            return "baton"
        return shlex.quote(started if os.sep in started else str(Path(started).resolve()))
    python = Path(sys.executable).name
    found = shutil.which(python)
    runner = python if found and _same_file(found, sys.executable) else sys.executable
    return f"{shlex.quote(runner)} -m baton_temporal.cli"


def activate_hint() -> str | None:
    """``source .venv/bin/activate`` when ``baton`` runs from a virtualenv that is not
    on ``PATH`` (so plain ``baton`` would not be found); None otherwise."""
    started = _started_as()
    if started is None or baton_command() == "baton":
        return None
    activate = Path(started).parent / "activate"
    if not activate.is_file():
        return None
    return f"source {shlex.quote(str(activate))}"
