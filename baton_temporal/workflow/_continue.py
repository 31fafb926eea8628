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
from temporalio.common import RawValue

from ._budget import carry_problem

__all__ = [
    "CARRY_KEY",
    "DEFAULT_HISTORY_EVENTS",
    "HISTORY_BYTES",
    "Carry",
    "EncodedFlow",
    "split_input",
]

CARRY_KEY = "baton_continue"
# Continue past this many events (a flow's ``max_history_events`` may lower it). Draining
# a full window of 1,000 steps adds up to ~6,000 more: far below 51,200.
DEFAULT_HISTORY_EVENTS = 10_000
# ... or past this many bytes of history (Temporal's hard limit is 50 MB).
HISTORY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class EncodedFlow:
    """A fresh run's flow JSON as it arrived, decoded again only to continue as new.

    The run holds its raw input anyway; keeping the decoded copy beside the checked
    spec cost ~5 KiB per flow in flight, i.e. 5 MiB of a worker's RSS with 1,000 flows
    cached (benchmarks/rss_breakdown.py). Decoding the same payload gives the same data,
    so the continued run gets exactly what it would have.

    Example::

        Carry(flow=EncodedFlow(raw)).to_input()["flow"]   # the decoded flow JSON
    """

    raw: RawValue

    def decode(self) -> Any:
        return workflow.payload_converter().from_payload(self.raw.payload)


@dataclass
class Carry:
    """What one run hands the next: the flow, and each step's state and result so far."""

    flow: Any
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 1
    budget: dict[str, Any] | None = None
    """The budget book's spend so far (_budget.py), for a flow with a cap."""

    def check(self, step_names: list[str]) -> None:
        """Refuse states and results that do not fit the flow (``ValueError``)."""
        known = set(step_names)
        problems: list[str] = []
        for name, state in self.states.items():
            if name not in known:
                problems.append(f"state of {name!r}, which is not a step of the flow")
                continue
            for key, value in state.items():
                kind = _STATE_FIELDS.get(key)
                if kind is None:
                    problems.append(f"state of {name!r} has an unknown field {key!r}")
                elif value is not None and type(value) is not kind:
                    problems.append(f"state of {name!r}: {key} is {value!r}")
            if state.get("state") == "completed" and name not in self.results:
                problems.append(f"{name!r} is completed but has no result")
        for name in self.results:
            if name not in known:
                problems.append(f"result of {name!r}, which is not a step of the flow")
            elif self.states.get(name, {}).get("state") != "completed":
                problems.append(f"result of {name!r}, which is not completed")
        if problems:
            raise ValueError(_carry_error(problems))

    def to_input(self) -> dict[str, Any]:
        return {
            CARRY_KEY: 1,
            "flow": self.flow.decode() if isinstance(self.flow, EncodedFlow) else self.flow,
            "states": self.states,
            "results": self.results,
            "runs": self.runs,
            **({"budget": self.budget} if self.budget is not None else {}),
        }


def split_input(data: Any) -> Carry:
    """The run's input as a :class:`Carry` (a fresh flow has no states yet).

    A carry is only ever written by this workflow, but the input of a run can come from
    anyone who may start workflows: its shape is checked, and :meth:`Carry.check`
    checks it against the flow, so that a forged carry fails the run with a reason.
    """
    if not (isinstance(data, dict) and CARRY_KEY in data):
        return Carry(flow=data)
    if type(data[CARRY_KEY]) is not int or data[CARRY_KEY] != 1:
        raise ValueError(
            f"{CARRY_KEY!r} is {data[CARRY_KEY]!r}; this baton-temporal continues flows with "
            f"{CARRY_KEY!r}: 1 (it writes that key itself at continue-as-new): start a flow "
            "with the flow JSON alone"
        )
    extra = sorted(set(data) - {CARRY_KEY, "flow", "states", "results", "runs", "budget"})
    states, results, runs = data.get("states", {}), data.get("results", {}), data.get("runs", 1)
    problems = [f"unknown key {key!r}" for key in extra]
    if not isinstance(states, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in states.items()
    ):
        problems.append("'states' must map step names to step states")
    if not isinstance(results, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in results.items()
    ):
        problems.append("'results' must map step names to JSON objects")
    if type(runs) is not int or runs < 1:
        problems.append(f"'runs' must be a whole number >= 1, got {runs!r}")
    budget = data.get("budget")
    bad_budget = None if budget is None else carry_problem(budget)
    if bad_budget:
        problems.append(bad_budget)
    if problems:
        raise ValueError(_carry_error(problems))
    return Carry(flow=data.get("flow"), states=states, results=results, runs=runs, budget=budget)


_STATE_FIELDS = {
    "step": str,
    "state": str,
    "attempt": int,
    "started_at": str,
    "ended_at": str,
    "error": str,
    "model": str,
}


def _carry_error(problems: list[str]) -> str:
    shown = "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    )
    return (
        f"the continue-as-new input is malformed ({shown}); only this workflow writes it: "
        "start a flow with the flow JSON alone"
    )


def history_full(max_events: int | None) -> bool:
    """Whether this run should stop admitting steps and continue as new."""
    info = workflow.info()
    limit = max_events or DEFAULT_HISTORY_EVENTS
    return (
        info.get_current_history_length() >= limit
        or info.get_current_history_size() >= HISTORY_BYTES
        or info.is_continue_as_new_suggested()
    )
