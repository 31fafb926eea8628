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

__all__ = ["FAN_OUT_QUORUM_EARLY", "QUORUM_EARLY_START", "UNREGISTERED_STEP_WAIT"]

# 0.2: a quorum step starts once k dependencies completed; stragglers may be cancelled.
QUORUM_EARLY_START = "baton-quorum-early-start"
# 0.2: run_fan_out(quorum=k) returns once k models succeeded; stragglers may be cancelled.
FAN_OUT_QUORUM_EARLY = "baton-fan-out-quorum-early"
# 0.2: a step no worker registers is rescheduled with backoff until one does (bounded).
UNREGISTERED_STEP_WAIT = "baton-unregistered-step-wait"
