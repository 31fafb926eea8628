"""What a fan-out's models answered: the successes by model, or the fan-out's failure.

Shared by the direct fan-out (_fan_out.py) and the batch fan-out (_batch.py), which
gather their steps the same way and fail the same way when too few models answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError

__all__ = ["FAN_OUT_FAILED_ERROR", "answers_by_model"]

# The error type of a fan-out that got fewer answers than it needs.
FAN_OUT_FAILED_ERROR = "FanOutFailed"


def answers_by_model(
    base: str,
    step_names: Mapping[str, str],
    outcomes: Sequence[Any],
    need: int,
    value: Callable[[Any], Any] = lambda outcome: outcome,
) -> dict[str, Any]:
    """``value(outcome)`` by model for the steps that succeeded, in the models' order.

    ``outcomes`` is what ``asyncio.gather(..., return_exceptions=True)`` gave, one per
    model of ``step_names``. A step that failed (an activity error) is named in the
    fan-out's failure when fewer than ``need`` succeeded; any other exception is raised.

    Example::

        outcomes = await asyncio.gather(*steps, return_exceptions=True)
        results = answers_by_model("assess", step_names, outcomes, need=2)
    """
    by_model: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for model, outcome in zip(step_names, outcomes, strict=True):
        if isinstance(outcome, ActivityError):
            failures[model] = str(outcome.cause or outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            by_model[model] = value(outcome)
    if len(by_model) < need:
        raise ApplicationError(
            f"fan-out {base!r}: {len(by_model)} of {len(step_names)} models succeeded, {need} "
            "needed; failed: " + "; ".join(f"{m}: {e}" for m, e in failures.items()),
            {"failed": list(failures)},
            type=FAN_OUT_FAILED_ERROR,
            non_retryable=True,
        )
    return by_model
