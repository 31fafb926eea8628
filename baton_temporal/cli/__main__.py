"""``python -m baton_temporal.cli``: the same as the ``baton`` program."""

from ._commands import _exit_now, _run

_exit_now(_run(None))
