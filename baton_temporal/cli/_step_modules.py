"""Step modules named on the command line are found in the current directory too.

``python -m workers.worker`` puts the current directory on ``sys.path`` (``python -m``
does), but the ``baton`` script does not: ``baton dev --steps mysteps`` beside
``mysteps.py`` failed with "cannot import step module" unless ``PYTHONPATH=.`` was set.
``baton worker`` and ``baton dev`` add the current directory, last, so a module there
never shadows an installed package of the same name.
"""

from __future__ import annotations

import os
import sys

__all__ = ["steps_importable_from_cwd"]


def steps_importable_from_cwd() -> None:
    """Append the current directory to ``sys.path`` if no entry names it yet.

    Example::

        steps_importable_from_cwd()
        load_steps(["mysteps"])  # ./mysteps.py
    """
    cwd = os.getcwd()
    entries = {os.path.abspath(p or os.curdir) for p in sys.path}
    if cwd not in entries:
        sys.path.append(cwd)
