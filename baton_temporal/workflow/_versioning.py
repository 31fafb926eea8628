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

__all__ = ["FLOW_ERRORS_FAIL_RUN", "RETRY_MERGES_OVER_DEFAULTS", "STRICT_FLOW_INPUT"]

# After 0.1.0: the flow's input is checked against Temporal's bounds (and decoded by the workflow
# itself); a bad input fails the run. Before: some passed and failed every workflow task.
STRICT_FLOW_INPUT = "baton.strict-flow-input"
# After 0.1.0: a partial JSON retry spec merges over DEFAULT_RETRY (10 attempts), not Temporal's
# defaults (no attempt limit).
RETRY_MERGES_OVER_DEFAULTS = "baton.retry-merges-over-defaults"
# After 0.1.0: an unexpected exception in the flow workflow's own code fails the run
# (FlowInternalError) instead of failing its workflow task for ever.
FLOW_ERRORS_FAIL_RUN = "baton.flow-errors-fail-run"
