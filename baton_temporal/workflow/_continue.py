"""Continue-as-new for long flows: history stays under Temporal's limits at any length.

Temporal ends a run whose history passes 51,200 events or 50 MB. A step costs about 3
events, plus workflow-task events, so a flow of ~10,000 steps cannot finish in one run.
The flow workflow therefore watches its history; past :data:`DEFAULT_HISTORY_EVENTS`
events or :data:`HISTORY_BYTES` bytes (or when the server suggests it), it stops admitting
steps, lets the ones in flight finish (at most the window, about 6 events each, so the run
stays far below the limit), and continues as new with a :class:`Carry`: the flow itself
and every step's state and result so far. The next run restores them, so the
``baton.steps`` query and the final ``FlowResult`` stay complete across runs, and only
the steps still pending run there.

The carry travels as one payload; when it is large the payload store keeps it outside
history like any other large payload.

Example (what a continued run receives)::

    {"baton_continue": 1, "flow": {...the flow...}, "runs": 2,
     "states": {"parse": {"step": "parse_doc", "state": "completed", ...}, ...},
     "results": {"parse": {...}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

__all__ = ["CARRY_KEY", "DEFAULT_HISTORY_EVENTS", "HISTORY_BYTES", "Carry", "split_input"]

CARRY_KEY = "baton_continue"
# Continue past this many events (a flow's ``max_history_events`` may lower it). Draining
# a full window of 1,000 steps adds up to ~6,000 more: far below 51,200.
DEFAULT_HISTORY_EVENTS = 10_000
# ... or past this many bytes of history (Temporal's hard limit is 50 MB).
HISTORY_BYTES = 20 * 1024 * 1024


@dataclass
class Carry:
    """What one run hands the next: the flow, and each step's state and result so far."""

    flow: Any
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 1

    def to_input(self) -> dict[str, Any]:
        return {
            CARRY_KEY: 1,
            "flow": self.flow,
            "states": self.states,
            "results": self.results,
            "runs": self.runs,
        }


def split_input(data: Any) -> Carry:
    """The run's input as a :class:`Carry` (a fresh flow has no states yet)."""
    if isinstance(data, dict) and data.get(CARRY_KEY) == 1:
        return Carry(
            flow=data.get("flow"),
            states=dict(data.get("states") or {}),
            results=dict(data.get("results") or {}),
            runs=int(data.get("runs") or 1),
        )
    return Carry(flow=data)


def history_full(max_events: int | None) -> bool:
    """Whether this run should stop admitting steps and continue as new."""
    info = workflow.info()
    limit = max_events or DEFAULT_HISTORY_EVENTS
    return (
        info.get_current_history_length() >= limit
        or info.get_current_history_size() >= HISTORY_BYTES
        or info.is_continue_as_new_suggested()
    )
