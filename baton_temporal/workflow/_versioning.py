"""How workflow code changes without breaking runs in flight.

A run that is in flight when workers are upgraded is replayed by the new code: Temporal
re-runs the workflow from its history and checks that the new code issues the same
commands (schedule an activity, start a timer, complete the run...) in the same order.
Code that issues different commands for the same history fails the workflow task and
wedges the run.

The rule, for every change to ``baton_temporal.workflow``:

1. A change that alters the command sequence of any run (a new, removed or reordered
   activity or timer, a different cancellation, continue-as-new, a changed failure) goes
   behind ``workflow.patched(PATCH_ID)``, with the old behaviour in the ``else`` branch.
   Add the id below, with the release that introduced it.
2. Once no run that started before the patch can still be in flight (the longest flow's
   retention has passed), replace ``patched`` by ``workflow.deprecate_patch`` in one
   release and remove the old branch in the next.
3. A change that does not alter commands (messages, queries, details) needs no patch.
4. ``tests/histories/`` holds histories recorded from each release; CI replays them all
   against the current code. A change that breaks one without a patch fails CI.

Example::

    if workflow.patched(QUORUM_EARLY_START):
        ...  # new behaviour
    else:
        ...  # the behaviour of runs recorded before it
"""

from __future__ import annotations

__all__ = ["BIG_FLOWS"]

# After 0.1.0: default concurrency window, per-task byte budget, continue-as-new (_window.py,
# _continue.py); runs started before it keep an unbounded scheduler and one run.
BIG_FLOWS = "baton.big-flows"
