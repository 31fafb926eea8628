"""The ``baton`` command line.

=================================  ==========================================================
``baton demo``                     the seed's multi-model flow on embedded Temporal + ledger
``baton dev``                      embedded Temporal (with UI), ledger and worker until Ctrl-C
``baton start FILE``               start a flow from a JSON or YAML file (``--wait``)
``baton status WORKFLOW_ID``       each step's state (``--watch`` until it ends)
``baton stats totals|steps ID``    tokens and cost of one workflow, from the ledger
``baton stats models``             cost per model over a period (``--since 7d``)
``baton ui``                       the cost page: flows, DAG, cost, live (localhost:8234)
``baton worker``                   the worker program (``BATON_STEPS``, ``--steps``)
``baton db upgrade`` / ``prune``   create/upgrade the ledger tables; delete old rows
=================================  ==========================================================

Errors a user can fix print one line on stderr and exit with status 2; ``--debug`` adds
the traceback. Each command imports what it needs when it runs, so ``baton --help``
loads neither Temporal's client nor the ledger.

Example::

    from baton_temporal.cli import main

    main(["stats", "totals", "my-flow-id"])
"""

from ._commands import build_parser, load_flow_file, main, parse_duration, parse_when
from ._common import CliError, describe_failure, short_error

__all__ = [
    "CliError",
    "build_parser",
    "describe_failure",
    "load_flow_file",
    "main",
    "parse_duration",
    "parse_when",
    "short_error",
]
