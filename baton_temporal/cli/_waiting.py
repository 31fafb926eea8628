"""What a running flow is waiting on, read from Temporal's description of the run.

A flow whose step called a model while the ledger was down hands the usage to the
``baton.record_usage`` activity, which retries until the ledger takes it: the flow waits
there, with every step looking done or running. ``baton status`` says so.

Example::

    description = await handle.describe()
    ledger_wait(description)
    # 'waiting for the ledger: LedgerUnavailable: ledger not writable yet: ... (attempt 4)'
"""

from __future__ import annotations

from typing import Any

from ..workflow._wire import RECORD_USAGE_ACTIVITY

__all__ = ["ledger_wait"]

# What the server keeps of an activity failure over limit.mutableStateActivityFailureSize.
_TRUNCATED = "Failure exceeds size limit."


def ledger_wait(description: Any) -> str | None:
    """ "waiting for the ledger: <reason>" if a usage write of the run is being retried."""
    raw = getattr(description, "raw_description", None)
    pending = [
        p
        for p in (raw.pending_activities if raw is not None else ())
        if p.activity_type.name == RECORD_USAGE_ACTIVITY
        and (p.attempt > 1 or p.HasField("last_failure"))
    ]
    if not pending:
        return None
    latest = max(pending, key=lambda p: p.attempt)
    failure = latest.last_failure
    reason = failure.message or "its last write failed"
    if reason == _TRUNCATED:
        reason = "its last write failed (Temporal kept no reason: the error was too large)"
    kind = (
        failure.application_failure_info.type
        if failure.HasField("application_failure_info")
        else ""
    )
    text = " ".join((f"{kind}: {reason}" if kind else reason).split())
    if len(text) > 300:
        text = text[:297] + "..."
    more = f", {len(pending)} usage writes waiting" if len(pending) > 1 else ""
    when = ""
    if latest.HasField("next_attempt_schedule_time"):
        when = f", next try {latest.next_attempt_schedule_time.ToDatetime():%H:%M:%S} UTC"
    return (
        f"waiting for the ledger: {text} (attempt {latest.attempt}{when}{more}); the usage is "
        "kept in Temporal and the flow goes on once the ledger is writable again"
    )
