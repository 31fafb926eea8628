"""Per-step execution options: timeouts, retries, task queue, local execution."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from temporalio.common import RetryPolicy

__all__ = ["DEFAULT_RETRY", "StepOptions", "StepRef"]

# Temporal's own default retries forever; a flow of paid LLM calls should not. Ten
# attempts with backoff to one minute ride out provider hiccups and rate limits
# (a provider's retry-after overrides the backoff) and then let the flow fail.
DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)
DEFAULT_START_TO_CLOSE = timedelta(minutes=10)
# Steps heartbeat on their own while they run (see steps/_step.py), so a worker that dies
# mid-step is detected in this long and its step retried on another worker.
DEFAULT_HEARTBEAT_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class StepOptions:
    """How Temporal runs a step. ``None`` means "inherit".

    Set defaults on the step (``@baton.step(start_to_close_timeout=...)``) and override
    them per flow node (``flow.add(..., options=StepOptions(...))`` or the keyword
    shortcuts of :meth:`Flow.add`).
    """

    start_to_close_timeout: timedelta | None = None
    schedule_to_close_timeout: timedelta | None = None
    heartbeat_timeout: timedelta | None = None
    retry_policy: RetryPolicy | None = None
    task_queue: str | None = None
    local: bool | None = None
    """Run as a Temporal local activity: ~10 ms instead of ~50-100 ms per step, for
    short steps that do no LLM call (parsing, formatting). Local activities retry
    inside the workflow task and are not visible as separate tasks in the UI."""

    def merged_over(self, base: StepOptions) -> StepOptions:
        """These options, with every unset field taken from ``base``."""
        return replace(
            base,
            **{k: v for k, v in self.__dict__.items() if v is not None},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.total_seconds()
        if self.retry_policy is not None:
            rp = self.retry_policy
            out["retry"] = {
                "initial_interval": rp.initial_interval.total_seconds(),
                "backoff_coefficient": rp.backoff_coefficient,
                "maximum_interval": rp.maximum_interval.total_seconds()
                if rp.maximum_interval
                else None,
                "maximum_attempts": rp.maximum_attempts,
                "non_retryable_error_types": list(rp.non_retryable_error_types or []),
            }
        if self.task_queue is not None:
            out["task_queue"] = self.task_queue
        if self.local is not None:
            out["local"] = self.local
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepOptions:
        def seconds(key: str) -> timedelta | None:
            value = data.get(key)
            return None if value is None else timedelta(seconds=float(value))

        retry = data.get("retry")
        policy = None
        if retry is not None:
            policy = RetryPolicy(
                initial_interval=timedelta(seconds=float(retry.get("initial_interval", 1))),
                backoff_coefficient=float(retry.get("backoff_coefficient", 2.0)),
                maximum_interval=timedelta(seconds=float(retry["maximum_interval"]))
                if retry.get("maximum_interval") is not None
                else None,
                maximum_attempts=int(retry.get("maximum_attempts", 0)),
                non_retryable_error_types=list(retry.get("non_retryable_error_types") or [])
                or None,
            )
        return cls(
            start_to_close_timeout=seconds("start_to_close_timeout"),
            schedule_to_close_timeout=seconds("schedule_to_close_timeout"),
            heartbeat_timeout=seconds("heartbeat_timeout"),
            retry_policy=policy,
            task_queue=data.get("task_queue"),
            local=data.get("local"),
        )


@runtime_checkable
class StepRef(Protocol):
    """What flows and workflow code need of a step: its registered name and its default
    options. ``@baton.step`` makes one; the function itself stays on the worker side.

    Example::

        isinstance(parse_doc, StepRef)  # True for any @baton.step function
    """

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> StepOptions: ...
