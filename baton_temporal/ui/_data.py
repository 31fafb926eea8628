"""What the cost page shows, read from Temporal (list, describe, query, history) and the
ledger. Every function returns plain JSON data; nothing here writes anywhere.

Example::

    flows = await list_flows(client, store, limit=50)
    view = await flow_view(client, store, "wf-1", graph=graph_from_event(first_event, client))
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = [
    "FlowGraph",
    "cost_series",
    "flow_view",
    "graph_from_event",
    "list_flows",
]

QUERY_TIMEOUT = timedelta(seconds=5)
# Buckets of the cost chart over its period.
CHART_BUCKETS = 24


@dataclasses.dataclass(frozen=True)
class FlowGraph:
    """A flow's steps and edges, in flow order (read from the run's input)."""

    name: str
    steps: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, step, deps)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _status(description: Any) -> str:
    status = getattr(description, "status", None)
    return status.name if status is not None else "UNKNOWN"


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((end or datetime.now(UTC)) - start).total_seconds(), 3)


async def list_flows(client: Any, store: Any, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest ``limit`` workflows of the namespace, newest first, with their cost."""
    flows = []
    async for wf in client.list_workflows(limit=limit):
        flows.append(
            {
                "workflow_id": wf.id,
                "run_id": wf.run_id,
                "type": wf.workflow_type,
                "status": _status(wf),
                "task_queue": wf.task_queue,
                "started_at": _iso(wf.start_time),
                "closed_at": _iso(wf.close_time),
                "duration_s": _duration(wf.start_time, wf.close_time),
            }
        )
    costs: dict[str, Any] = {}
    if store is not None and flows:
        with contextlib.suppress(Exception):  # a ledger outage leaves costs blank
            costs = await store.costs_for_workflows([f["workflow_id"] for f in flows])
    for f in flows:
        cost = costs.get(f["workflow_id"])
        f["calls"] = cost.calls if cost else 0
        f["cost_usd"] = _money(cost.cost_usd) if cost else None
        f["unpriced_calls"] = cost.unpriced_calls if cost else 0
    return flows


async def graph_from_event(event: Any, client: Any) -> FlowGraph | None:
    """The flow of a ``baton.Flow`` run, from its WorkflowExecutionStarted event's input
    (decoded with the client's data converter, so an encrypted input works too)."""
    from ..flow._spec import FLOW_WORKFLOW_TYPE, parse_flow
    from ..workflow._continue import split_input

    if event is None or not event.HasField("workflow_execution_started_event_attributes"):
        return None
    attrs = event.workflow_execution_started_event_attributes
    if attrs.workflow_type.name != FLOW_WORKFLOW_TYPE or not attrs.input.payloads:
        return None
    try:
        (data,) = await client.data_converter.decode(attrs.input.payloads[:1])
        spec = parse_flow(split_input(data).flow, legacy=True)
    except Exception:
        return None  # not readable as a flow: the page shows the steps without edges
    return FlowGraph(
        name=spec.workflow_name,
        steps=tuple((s.name, s.step, tuple(s.deps)) for s in spec.steps),
    )


def _levels(order: Sequence[str], deps: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each step's column in the drawing: 1 + its deepest dependency's."""
    level: dict[str, int] = {}
    for name in order:  # a flow lists every step after its dependencies
        level[name] = 1 + max((level.get(d, 0) for d in deps.get(name, ())), default=-1)
    return level


def _as_dict(state: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.asdict(state)
    return dict(state)


async def flow_view(
    client: Any,
    store: Any,
    workflow_id: str,
    *,
    graph: FlowGraph | None = None,
    summaries: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One flow: status, steps (state, model, attempts, tokens, cost), edges, totals."""
    from ..cli._commands import _describe, _step_states

    handle, description = await _describe(client, workflow_id)
    states, note = await _step_states(handle, description)
    states = {n: _as_dict(s) for n, s in (states or {}).items()}
    usage: dict[str, list[Any]] = {}
    if store is not None:
        try:
            for row in await store.steps_for_workflow(workflow_id):
                usage.setdefault(row.step, []).append(row)
        except Exception as err:
            note = "; ".join(filter(None, [note, f"ledger unavailable: {err}"]))
    pending: dict[str, dict[str, Any]] = {}
    raw = getattr(description, "raw_description", None)
    for act in getattr(raw, "pending_activities", None) or []:
        info = {"attempt": act.attempt, "step": None}
        summary = (summaries or {}).get(act.activity_id)
        if summary is not None:
            with contextlib.suppress(Exception):
                (label,) = await client.data_converter.decode([summary])
                info["step"] = str(label).split(" (", 1)[0]
        if act.HasField("last_failure"):
            info["last_failure"] = " ".join(act.last_failure.message.split())
        pending[act.activity_id] = info

    order = [s[0] for s in graph.steps] if graph else []
    order += [n for n in states if n not in order]
    order += [n for n in usage if n not in order]
    deps = {s[0]: s[2] for s in graph.steps} if graph else {}
    kinds = {s[0]: s[1] for s in graph.steps} if graph else {}
    level = _levels(order, deps)
    steps = []
    total_cost: Decimal | None = None
    for name in order:
        s = states.get(name, {})
        rows = usage.get(name, [])
        priced = [r.cost_usd for r in rows if r.cost_usd is not None]
        cost = sum(priced, Decimal(0)) if priced else None
        if cost is not None:
            total_cost = (total_cost or Decimal(0)) + cost
        models = sorted({r.model for r in rows})
        attempt = max([s.get("attempt") or 0, *(r.attempts for r in rows)])
        step = {
            "name": name,
            "step": s.get("step") or kinds.get(name) or name,
            "state": s.get("state") or ("completed" if rows else "unknown"),
            "model": s.get("model") or (", ".join(models) if models else None),
            "attempt": attempt,
            "started_at": s.get("started_at"),
            "ended_at": s.get("ended_at"),
            "error": s.get("error"),
            "deps": list(deps.get(name, ())),
            "level": level.get(name, 0),
            "calls": sum(r.calls for r in rows),
            "input_tokens": sum(r.input_tokens for r in rows),
            "output_tokens": sum(r.output_tokens for r in rows),
            "cache_tokens": sum(r.cache_read_tokens + r.cache_write_tokens for r in rows),
            "cost_usd": _money(cost),
            "unpriced_calls": sum(r.unpriced_calls for r in rows),
        }
        steps.append(step)
    # A step in flight shows the attempt Temporal is on (a retry writes no history);
    # its activity is told by the summary the flow gave it (its step name).
    by_name = {s["name"]: s for s in steps}
    for info in pending.values():
        live = by_name.get(info["step"] or "")
        if live is not None and live["state"] in ("running", "waiting"):
            live["attempt"] = max(live["attempt"], info["attempt"])
            if info.get("last_failure") and info["attempt"] > 1:
                live["retrying"] = info["last_failure"]
    return {
        "workflow_id": handle.id,
        "run_id": description.run_id,
        "type": description.workflow_type,
        "name": graph.name if graph else description.workflow_type,
        "status": _status(description),
        "task_queue": description.task_queue,
        "started_at": _iso(description.start_time),
        "closed_at": _iso(description.close_time),
        "duration_s": _duration(description.start_time, description.close_time),
        "steps": steps,
        "edges": [[d, s["name"]] for s in steps for d in s["deps"]],
        "cost_usd": _money(total_cost),
        "calls": sum(s["calls"] for s in steps),
        "in_flight": bool(pending) or any(s["state"] in ("running", "waiting") for s in steps),
        "note": note or None,
    }


async def cost_series(store: Any, *, since: timedelta, now: datetime | None = None) -> dict:
    """Cost by model over the last ``since``, in :data:`CHART_BUCKETS` buckets."""
    end = now or datetime.now(UTC)
    bucket = max(timedelta(seconds=1), since / CHART_BUCKETS)
    start = end - bucket * CHART_BUCKETS
    points = await store.cost_over_time(start, end + timedelta(seconds=1), bucket=bucket)
    return {
        "start": _iso(start),
        "end": _iso(end),
        "bucket_s": bucket.total_seconds(),
        "points": [
            {
                "start": _iso(p.start),
                "model": p.model,
                "calls": p.calls,
                "cost_usd": _money(p.cost_usd),
                "unpriced_calls": p.unpriced_calls,
            }
            for p in points
        ],
    }
