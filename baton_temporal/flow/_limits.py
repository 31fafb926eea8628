"""The bounds a flow must stay within, and the checks that apply them.

Each number is one that Temporal (server or Python SDK) enforces, or that would wedge a
run if it got past the builder: the server refuses a command with such a value, the
workflow task that sent it fails, and Temporal retries that task for ever. So every flow
is checked against these when it is built and again when the generic workflow reads it.

Pure and deterministic (this module runs in workflow code).

Example::

    duration_problem("start_to_close_timeout", -1)
    # 'start_to_close_timeout is -1; use a number of seconds > 0 and at most ...'
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "INT32_MAX",
    "MAX_CONCURRENCY",
    "MAX_DURATION_SECONDS",
    "MAX_ID_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_SUMMARY_CHARS",
    "MIN_DURATION_SECONDS",
    "RESERVED_TASK_QUEUE_PREFIX",
    "duration_problem",
    "error_type_problem",
    "id_problem",
]

INT32_MAX = 2**31 - 1
"""RetryPolicy.maximum_attempts is an int32 in Temporal's API (temporal.api.common.v1)."""

MAX_DURATION_SECONDS = 250 * 365 * 24 * 3600
"""Temporal caps every duration at 250 years (server common/primitives/timestamp,
``maxAllowedDuration``; Go's time.Duration ends near 292 years). Longer ones overflow on
the way there, so a timeout or retry interval beyond this is refused."""

MIN_DURATION_SECONDS = 0.001
"""Shorter than this is no timeout or interval anyone means, and below Python's timedelta
resolution (1 µs) it becomes 0, which Temporal reads as "not set"."""

MIN_HEARTBEAT_TIMEOUT_SECONDS = 0.3
"""A step's keep-alive beats at most every 0.1 s, its first beat by two thirds of the
timeout: below 0.3 s its beats cannot stay inside the timeout, and every attempt would
time out. Checked where flows and steps are built, not in workflow code (a run recorded
before the check must replay as it ran)."""


def heartbeat_problem(what: str, timeout: Any, *, local: bool | None = False) -> str | None:
    """Why ``timeout`` (a timedelta or seconds) is too short for a step's heartbeats. A
    local step never heartbeats (Temporal gives local activities no heartbeat timeout), so
    no length of it can fail an attempt."""
    if local:
        return None
    seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
    if isinstance(seconds, int | float) and 0 < seconds < MIN_HEARTBEAT_TIMEOUT_SECONDS:
        return (
            f"{what} is {seconds:g} s, shorter than a step can heartbeat in (every 0.1 s at "
            f"most); use at least {MIN_HEARTBEAT_TIMEOUT_SECONDS:g} s (the default is 30 s)"
        )
    return None


MAX_ID_BYTES = 1000
"""The server's ``limit.maxIDLength`` (default 1000, in UTF-8 bytes): workflow ids, task
queue names, activity types and ids longer than this are rejected
(common/dynamicconfig ``MaxIDLengthLimit``; activity validator, tqid.Validate)."""

RESERVED_TASK_QUEUE_PREFIX = "/_sys/"
"""Task queue names starting with this are the server's own (tqid.Validate)."""

MAX_CONCURRENCY = 2000
"""The server's ``limit.numPendingActivities.error``: a run cannot have more than 2,000
activities pending at once, so a larger concurrency bound cannot take effect."""

MAX_JSON_DEPTH = 100
"""How deeply step args (and results) may nest. Temporal's JSON converter recurses once
per level and Python's default recursion limit is 1,000: data nested ~1,000 deep cannot
be sent at all, and a workflow that tried would fail its task for ever. 100 leaves room
for the envelopes (step input, flow result) around the data."""

MAX_SUMMARY_CHARS = 120
"""A step's UI label is kept under the server's ``limit.userMetadataSummarySize`` (400
bytes of payload, JSON-escaped): at most 120 characters of up to 3 bytes each."""


def duration_problem(what: str, seconds: Any, *, allow_zero: bool = False) -> str | None:
    """Why ``seconds`` cannot be a Temporal duration, or None if it can."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return f"{what} is {seconds!r}; use a number of seconds"
    if not math.isfinite(seconds):
        return f"{what} is {seconds!r}; use a finite number of seconds"
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        return f"{what} is {seconds!r}; use a number of seconds {bound}"
    if 0 < seconds < MIN_DURATION_SECONDS:
        return f"{what} is {seconds!r}; use at least {MIN_DURATION_SECONDS} seconds (1 ms)"
    if seconds > MAX_DURATION_SECONDS:
        return (
            f"{what} is {seconds!r} seconds, beyond Temporal's longest duration "
            f"({MAX_DURATION_SECONDS:,} s, 250 years); use a shorter one"
        )
    return None


def id_problem(what: str, value: Any, *, task_queue: bool = False) -> str | None:
    """Why ``value`` cannot be a Temporal id, type or task-queue name, or None if it can.

    Temporal measures ids in UTF-8 bytes and refuses text that is not valid UTF-8 (a
    lone surrogate such as ``"\\ud800"`` from JSON). Control characters and surrounding
    whitespace are refused too: they make names that look alike but are not.
    """
    if not isinstance(value, str) or not value:
        return f"{what} is {value!r}; use a non-empty string"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} {_short(value)} is not valid UTF-8 (a lone surrogate); fix its text"
    if size > MAX_ID_BYTES:
        return (
            f"{what} is {size:,} bytes long; Temporal allows at most {MAX_ID_BYTES} bytes "
            "(limit.maxIDLength); use a shorter one"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
        return (
            f"{what} {_short(value)} has control characters or surrounding whitespace; remove them"
        )
    if task_queue and value.startswith(RESERVED_TASK_QUEUE_PREFIX):
        return (
            f"{what} {_short(value)} starts with {RESERVED_TASK_QUEUE_PREFIX!r}, which "
            "Temporal reserves for its own queues; use another name"
        )
    return None


TIMEOUT_FAILURE_PREFIX = "TemporalTimeout:"
TIMEOUT_FAILURE_TYPES = ("StartToClose", "ScheduleToStart", "ScheduleToClose", "Heartbeat")
"""A non-retryable error type starting with ``TemporalTimeout:`` must name one of these
timeout types, or the server refuses the retry policy (common/retrypolicy Validate)."""


def error_type_problem(what: str, value: Any) -> str | None:
    """Why ``value`` cannot be a non-retryable error type, or None if it can."""
    bad = id_problem(what, value)
    if bad or not value.startswith(TIMEOUT_FAILURE_PREFIX):
        return bad
    kind = value.removeprefix(TIMEOUT_FAILURE_PREFIX)
    names = [k for k in TIMEOUT_FAILURE_TYPES]
    if kind not in names:
        return (
            f"{what} {_short(value)} names no timeout type Temporal knows; use one of "
            + ", ".join(f"'{TIMEOUT_FAILURE_PREFIX}{k}'" for k in names)
        )
    return None


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")
