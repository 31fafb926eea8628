"""How workflow code changes without breaking runs in flight.

A run in flight when workers are upgraded is replayed by the new code: Temporal re-runs
the workflow over its history and checks that the code issues the same commands
(schedule an activity, start a timer, cancel, complete or fail the run...) in the same
order. Code that issues other commands fails its workflow task again and again: the run
wedges.

The rule, for every change to ``baton_temporal.workflow`` and to what it calls
(``flow/_spec.py`` parses every flow in workflow code):

1. A change to the command sequence of any run goes behind ``workflow.patched(ID)``,
   with the old behaviour in the ``else`` branch: a new, removed or reordered activity
   or timer, a step scheduled under another name, a cancellation, continue-as-new, a
   different outcome (fails where it completed, or the reverse). Declare ``ID`` below,
   one line each, with the release that introduced it.
2. Once no run started before the patch can still be in flight, replace ``patched`` by
   ``workflow.deprecate_patch`` in one release and remove the old branch in the next.
3. No patch for what commands do not carry: messages, queries, summaries, logs. A
   stricter check needs none for inputs the old code could not run either (their runs
   were wedged, not in progress).
4. ``tests/histories/<release>/`` holds histories of real runs of each release;
   ``tests/workflow/test_replay.py`` replays them all in CI, checking Temporal's
   commands and each activity's step name (Temporal compares activity types, not
   inputs). A change that breaks one fails CI. ``make histories`` re-records
   ``current``; when a release ships, keep its corpus under the release's commit.

Example::

    if workflow.patched(QUORUM_EARLY_START):
        ...  # new behaviour
    else:
        ...  # the behaviour of runs recorded before it
"""

from __future__ import annotations

__all__ = [
    "BATCH_FAN_OUT",
    "BIG_FLOWS",
    "BOOL_NUMBERS_REFUSED",
    "BUDGET_CAPS",
    "FAN_OUT_QUORUM_EARLY",
    "FLOW_ERRORS_FAIL_RUN",
    "QUORUM_EARLY_START",
    "RETRY_MERGES_OVER_DEFAULTS",
    "STRICT_FLOW_INPUT",
    "UNREGISTERED_STEP_WAIT",
]

# After 0.1.0: the flow's input is checked against Temporal's bounds (and decoded by the workflow
# itself); a bad input fails the run. Before: some passed and failed every workflow task.
STRICT_FLOW_INPUT = "baton.strict-flow-input"
# After 0.1.0: a partial JSON retry spec merges over DEFAULT_RETRY (10 attempts), not Temporal's
# defaults (no attempt limit).
RETRY_MERGES_OVER_DEFAULTS = "baton.retry-merges-over-defaults"
# After 0.1.0: an unexpected exception in the flow workflow's own code fails the run
# (FlowInternalError) instead of failing its workflow task for ever.
FLOW_ERRORS_FAIL_RUN = "baton.flow-errors-fail-run"

# After 0.1.0: default concurrency window, per-task byte budget, continue-as-new (_window.py,
# _continue.py); runs started before it keep an unbounded scheduler and one run.
BIG_FLOWS = "baton.big-flows"

# After 0.1.0: a quorum step starts once k dependencies completed; stragglers may be cancelled.
QUORUM_EARLY_START = "baton.quorum-early-start"
# After 0.1.0: run_fan_out(quorum=k) returns once k models succeeded; stragglers may be cancelled.
FAN_OUT_QUORUM_EARLY = "baton.fan-out-quorum-early"
# After 0.1.0: a step no worker registers is rescheduled with backoff until one does (bounded).
UNREGISTERED_STEP_WAIT = "baton.unregistered-step-wait"
# After 0.1.0: a call refused for the flow's budget stops the flow (no new step starts; it fails).
BUDGET_CAPS = "baton.budget-caps"
# After 0.1.0: a fan-out step marked batch runs through the providers' batch APIs (_batch.py).
BATCH_FAN_OUT = "baton.batch-fan-out"
# After 0.1.0: a JSON boolean given for a number ("heartbeat_timeout": true) fails the run;
# runs started before it read it as 1. Consulted only for such inputs, so other runs carry
# no marker.
BOOL_NUMBERS_REFUSED = "baton.bool-numbers-refused"
