"""Per-step execution options: timeouts, retries, task queue, local execution."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError
from temporalio.common import RetryPolicy

from ._budget import budget_problem, check_budget
from ._errors import FlowError
from ._limits import (
    INT32_MAX,
    MAX_DURATION_SECONDS,
    duration_problem,
    error_type_problem,
    id_problem,
)

__all__ = ["DEFAULT_RETRY", "LEGACY_RETRY_BASE", "StepOptions", "StepRef", "retry_problems"]

# Temporal's own default retries forever; a flow of paid LLM calls should not. Ten
# attempts with backoff to one minute ride out provider hiccups and rate limits
# (a provider's retry-after overrides the backoff) and then let the flow fail.
DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)
# What a partial JSON retry spec merged over before this release: Temporal's own defaults
# (no attempt limit). Only runs that started before it replay with this.
LEGACY_RETRY_BASE = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=0
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
    schedule_to_start_timeout: timedelta | None = None
    """How long the step may wait for a worker to take it. Unset: no bound on the flow's
    own task queue, 10 minutes on another one (``task_queue``), so that a queue no worker
    polls fails the step instead of leaving the run waiting for ever."""
    task_queue: str | None = None
    local: bool | None = None
    """Run as a Temporal local activity: ~10 ms instead of ~50-100 ms per step, for
    short steps that do no LLM call (parsing, formatting). Local activities retry
    inside the workflow task and are not visible as separate tasks in the UI."""
    budget_usd: Decimal | str | int | float | None = None
    """Cap on this step's LLM spend in USD, all attempts together, within the flow's own
    cap (see docs/budgets.md). Kept as a Decimal."""

    def __post_init__(self) -> None:
        # Refused here, where the options are written: Temporal would refuse them only
        # when the step is scheduled, failing the workflow task over and over.
        problems: list[str] = []
        for key in (
            "start_to_close_timeout",
            "schedule_to_close_timeout",
            "schedule_to_start_timeout",
            "heartbeat_timeout",
        ):
            value = getattr(self, key)
            if value is None:
                continue
            if not isinstance(value, timedelta):
                problems.append(f"{key} is {value!r}; use a datetime.timedelta")
                continue
            bad = duration_problem(key, value.total_seconds())
            if bad:
                problems.append(bad)
        if self.retry_policy is not None:
            problems += retry_problems(self.retry_policy)
        if self.task_queue is not None:
            bad = id_problem("task_queue", self.task_queue, task_queue=True)
            if bad:
                problems.append(bad)
        if self.local is not None and not isinstance(self.local, bool):
            problems.append(f"local is {self.local!r}; use True or False")
        if self.budget_usd is not None:
            bad = budget_problem(self.budget_usd, "budget_usd")
            if bad:
                problems.append(bad)
            else:
                object.__setattr__(self, "budget_usd", check_budget(self.budget_usd))
        if problems:
            raise FlowError("bad step options: " + "; ".join(problems))

    def merged_over(self, base: StepOptions) -> StepOptions:
        """These options, with every unset field taken from ``base``."""
        return replace(
            base,
            **{k: v for k, v in self.__dict__.items() if v is not None},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in (
            "start_to_close_timeout",
            "schedule_to_close_timeout",
            "schedule_to_start_timeout",
            "heartbeat_timeout",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.total_seconds()
        if self.retry_policy is not None:
            rp = self.retry_policy
            initial = rp.initial_interval.total_seconds()
            out["retry"] = {
                "initial_interval": initial,
                "backoff_coefficient": rp.backoff_coefficient,
                # Written out: in JSON a missing maximum_interval means the library's
                # default, while a RetryPolicy without one means Temporal's (100 times
                # the initial interval, within its longest duration).
                "maximum_interval": rp.maximum_interval.total_seconds()
                if rp.maximum_interval
                else min(initial * 100, MAX_DURATION_SECONDS),
                "maximum_attempts": rp.maximum_attempts,
                "non_retryable_error_types": list(rp.non_retryable_error_types or []),
            }
        if self.task_queue is not None:
            out["task_queue"] = self.task_queue
        if self.local is not None:
            out["local"] = self.local
        if self.budget_usd is not None:
            out["budget_usd"] = str(self.budget_usd)
        return out

    @classmethod
    def from_json(
        cls, data: Any, *, retry_defaults: RetryPolicy = DEFAULT_RETRY, legacy: bool = False
    ) -> StepOptions:
        """Options from their JSON form (a flow step's ``"options"``).

        A partial ``"retry"`` merges over ``retry_defaults`` (the library's
        ``DEFAULT_RETRY``: 10 attempts); a left-out ``maximum_interval`` is the default's
        60 s, or the initial interval if that is longer. Raises :class:`FlowError` naming
        the bad field. ``legacy=True`` skips the bounds added in this release (replay).

        Example::

            StepOptions.from_json({"retry": {"initial_interval": 2}}).retry_policy
            # RetryPolicy(initial_interval=2 s, ..., maximum_attempts=10)
        """
        from ._spec import LEGACY_CONTEXT, OptionsSpec, pydantic_problems

        try:
            spec = OptionsSpec.model_validate(data, context=LEGACY_CONTEXT if legacy else None)
        except ValidationError as err:
            problems = "; ".join(pydantic_problems(err, "options"))
            raise FlowError(
                f"bad step options ({problems}); timeouts are seconds > 0, e.g. "
                '{"start_to_close_timeout": 60, "retry": {"maximum_attempts": 3}}'
            ) from None

        def seconds(value: float | None) -> timedelta | None:
            return None if value is None else timedelta(seconds=value)

        policy = None
        if spec.retry is not None:
            r, base = spec.retry, retry_defaults
            initial = seconds(r.initial_interval) or base.initial_interval
            maximum = seconds(r.maximum_interval)
            if maximum is None and base.maximum_interval is not None:
                maximum = max(base.maximum_interval, initial)
            policy = RetryPolicy(
                initial_interval=initial,
                backoff_coefficient=base.backoff_coefficient
                if r.backoff_coefficient is None
                else r.backoff_coefficient,
                maximum_interval=maximum,
                maximum_attempts=base.maximum_attempts
                if r.maximum_attempts is None
                else r.maximum_attempts,
                non_retryable_error_types=list(
                    (base.non_retryable_error_types or ())
                    if r.non_retryable_error_types is None
                    else r.non_retryable_error_types
                )
                or None,
            )
        make = _unchecked if legacy else cls
        return make(
            start_to_close_timeout=seconds(spec.start_to_close_timeout),
            schedule_to_close_timeout=seconds(spec.schedule_to_close_timeout),
            schedule_to_start_timeout=seconds(spec.schedule_to_start_timeout),
            heartbeat_timeout=seconds(spec.heartbeat_timeout),
            retry_policy=policy,
            task_queue=spec.task_queue,
            local=spec.local,
            budget_usd=spec.budget_usd,
        )


def _unchecked(**fields: Any) -> StepOptions:
    """StepOptions without the checks of __post_init__ (replaying older runs)."""
    options = object.__new__(StepOptions)
    for key, value in fields.items():
        object.__setattr__(options, key, value)
    return options


def retry_problems(policy: Any) -> list[str]:
    """Why Temporal would refuse ``policy``, as messages naming the fix (empty if sound).

    Example::

        retry_problems(RetryPolicy(maximum_attempts=2**40))
        # ["retry_policy.maximum_attempts is 1099511627776, beyond ..."]
    """
    if not isinstance(policy, RetryPolicy):
        return [f"retry_policy is {policy!r}; use a temporalio.common.RetryPolicy"]
    problems: list[str] = []
    intervals = {"initial_interval": policy.initial_interval}
    if policy.maximum_interval is not None:
        intervals["maximum_interval"] = policy.maximum_interval
    for key, value in intervals.items():
        if not isinstance(value, timedelta):
            problems.append(f"retry_policy.{key} is {value!r}; use a datetime.timedelta")
            continue
        bad = duration_problem(f"retry_policy.{key}", value.total_seconds(), allow_zero=True)
        if bad:
            problems.append(bad)
    coefficient = policy.backoff_coefficient
    if (
        isinstance(coefficient, bool)
        or not isinstance(coefficient, int | float)
        or not math.isfinite(coefficient)
        or coefficient < 1
    ):
        problems.append(
            f"retry_policy.backoff_coefficient is {coefficient!r}; use a number >= 1, e.g. 2.0"
        )
    attempts = policy.maximum_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        problems.append(f"retry_policy.maximum_attempts is {attempts!r}; use a whole number")
    elif not 0 <= attempts <= INT32_MAX:
        problems.append(
            f"retry_policy.maximum_attempts is {attempts}; use 1..{INT32_MAX:,} (Temporal "
            "stores it as an int32), or 0 for no limit"
        )
    if (
        not problems
        and policy.maximum_interval is not None
        and policy.maximum_interval < policy.initial_interval
    ):
        problems.append(
            f"retry_policy.maximum_interval ({policy.maximum_interval}) is below "
            f"initial_interval ({policy.initial_interval}); Temporal refuses that: make "
            "maximum_interval >= initial_interval"
        )
    for kind in policy.non_retryable_error_types or ():
        bad = error_type_problem("a non_retryable_error_types entry", kind)
        if bad:
            problems.append(bad)
    return problems


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
