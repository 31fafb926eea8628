"""When an activity's first heartbeat is due, counted from when Temporal started it.

Temporal's heartbeat clock runs from the start of the attempt on the server, not from
when the worker got round to running it. A worker that takes more activities than it can
start at once (1,000 slots on two cores) left steps 15-30 s late in `make bench-scale
SLOTS=1000`; a first beat counted from the code's own start then came after the deadline,
and the attempt was run (and its LLM calls billed) again.

Example::

    interval, first = call_beats(activity.info())
    await asyncio.sleep(first)  # then beat, then every `interval`
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["call_beats", "first_beat_in", "start_lag"]


# A worker does not take an attempt and leave it unstarted for hours: a start time that
# old is a test double's (temporalio's ActivityEnvironment says 1970) or a broken clock,
# and is not acted on.
MAX_BELIEVABLE_LAG = timedelta(hours=1)


def start_lag(info: Any) -> float:
    """Seconds between Temporal starting this attempt (``info.started_time``) and now;
    0 when the worker's clock is behind the server's, or the start is not believable."""
    started = getattr(info, "started_time", None)
    if not isinstance(started, datetime):
        return 0.0
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    lag = datetime.now(UTC) - started
    if lag > MAX_BELIEVABLE_LAG:
        return 0.0
    return max(0.0, lag.total_seconds())


def first_beat_in(timeout: timedelta | None, *, interval: float, lag: float) -> float:
    """Seconds to wait before the first heartbeat: ``interval``, but no later than two
    thirds of ``timeout`` after the attempt started (the last third leaves room for the
    beat to reach the server before the deadline); 0 when that is already past."""
    if not timeout:
        return interval
    return max(0.0, min(interval, timeout.total_seconds() * 2 / 3 - lag))


# An LLM call beats at least this often, whatever its heartbeat timeout.
MAX_CALL_BEAT_INTERVAL_S = 5.0


def call_beats(info: Any) -> tuple[float, float]:
    """``(interval, first)`` for the heartbeats of an LLM call in the activity ``info``
    describes: every third of its heartbeat timeout (5 s at most, 0.05 s at least), the
    first due by :func:`first_beat_in`. Without a heartbeat timeout: every 5 s."""
    timeout = getattr(info, "heartbeat_timeout", None)
    if not timeout:
        return MAX_CALL_BEAT_INTERVAL_S, MAX_CALL_BEAT_INTERVAL_S
    interval = min(MAX_CALL_BEAT_INTERVAL_S, max(0.05, timeout.total_seconds() / 3))
    return interval, first_beat_in(timeout, interval=interval, lag=start_lag(info))
