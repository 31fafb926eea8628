"""Statistics and history analysis shared by the benchmark phases."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from temporalio.client import WorkflowHistory


def summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    """median, p95 (nearest rank), mean, min, max of a list of milliseconds."""
    xs = sorted(samples_ms)
    if not xs:
        return {"n": 0}
    rank = max(1, math.ceil(0.95 * len(xs)))
    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 2),
        "p95": round(xs[rank - 1], 2),
        "mean": round(statistics.fmean(xs), 2),
        "min": round(xs[0], 2),
        "max": round(xs[-1], 2),
    }


def _ms(a: Any, b: Any) -> float:
    return (b.event_time.ToDatetime() - a.event_time.ToDatetime()).total_seconds() * 1000


def breakdown(history: WorkflowHistory) -> dict[str, Any]:
    """Where one run's server-side time went, from the event timestamps.

    ``wft_wait``: workflow tasks scheduled -> picked up by the worker (server-side
    dispatch); ``wft_run``: picked up -> completed (the worker running workflow code,
    plus the completion RPC). Workflow tasks never overlap, so these sum along the
    critical path; the rest of ``total`` is activities (and their dispatch).
    """
    events = list(history.events)
    by_id = {e.event_id: e for e in events}
    wft_wait = wft_run = 0.0
    wfts = 0
    act_wait: list[float] = []
    act_run: list[float] = []
    for e in events:
        kind = e.WhichOneof("attributes")
        if kind == "workflow_task_started_event_attributes":
            sched = by_id.get(e.workflow_task_started_event_attributes.scheduled_event_id)
            if sched is not None:
                wft_wait += _ms(sched, e)
        elif kind == "workflow_task_completed_event_attributes":
            started = by_id.get(e.workflow_task_completed_event_attributes.started_event_id)
            if started is not None:
                wft_run += _ms(started, e)
                wfts += 1
        elif kind == "activity_task_started_event_attributes":
            sched = by_id.get(e.activity_task_started_event_attributes.scheduled_event_id)
            if sched is not None:
                act_wait.append(_ms(sched, e))
        elif kind == "activity_task_completed_event_attributes":
            started = by_id.get(e.activity_task_completed_event_attributes.started_event_id)
            if started is not None:
                act_run.append(_ms(started, e))
    total = _ms(events[0], events[-1]) if events else 0.0
    return {
        "total": total,
        "wft_wait": wft_wait,
        "wft_run": wft_run,
        "workflow_tasks": wfts,
        "activity_wait_median": statistics.median(act_wait) if act_wait else 0.0,
        "activity_run_median": statistics.median(act_run) if act_run else 0.0,
        "activity_wait_max": max(act_wait, default=0.0),
        "activity_run_max": max(act_run, default=0.0),
        "events": len(events),
    }


def history_shape(history: WorkflowHistory) -> dict[str, Any]:
    """Sizes that Temporal limits: events, history bytes, the largest payload-carrying
    event, the largest workflow-task completion (what one task scheduled), pending."""
    events = list(history.events)
    per_wft: dict[int, int] = {}
    per_wft_count: dict[int, int] = {}
    largest = 0
    largest_kind = ""
    proto_bytes = 0
    for e in events:
        size = e.ByteSize()
        proto_bytes += size
        if size > largest:
            largest, largest_kind = size, e.WhichOneof("attributes") or ""
        if e.HasField("activity_task_scheduled_event_attributes"):
            wft = e.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
            per_wft[wft] = per_wft.get(wft, 0) + size
            per_wft_count[wft] = per_wft_count.get(wft, 0) + 1
    biggest_wft = max(per_wft.items(), key=lambda kv: kv[1], default=(0, 0))
    return {
        "events": len(events),
        "history_json_bytes": len(history.to_json()),
        "history_proto_bytes": proto_bytes,
        "largest_event_bytes": largest,
        "largest_event_kind": largest_kind.removesuffix("_event_attributes"),
        "largest_completion_bytes": biggest_wft[1],
        "largest_completion_activities": per_wft_count.get(biggest_wft[0], 0),
        "max_scheduled_in_one_task": max(per_wft_count.values(), default=0),
    }
