"""Fan-out and synthesis in workflow code: the hand-written form of ``multi_model.fan_out``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError

from ..flow._names import (
    FAN_OUT_MODELS_ARG,
    MODEL_ARG,
    fan_out_names,
    synthesis_name,
    with_model,
)
from ..flow._options import StepOptions, StepRef
from ._runtime import run_step

__all__ = ["run_fan_out", "run_synthesis"]


async def run_fan_out(
    step: StepRef | str,
    *,
    base: str,
    models: Sequence[str],
    args: Mapping[str, Any] | None = None,
    results: Mapping[str, Any] | None = None,
    quorum: int | None = None,
    names: Mapping[str, str] | None = None,
    options: StepOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """In workflow code: run ``step`` once per model, concurrently; ``{model: result}``.

    Steps are named and given args exactly as :func:`fan_out` does. Without ``quorum``
    every model must succeed; with it, at least ``quorum`` must, and the result holds
    the successful ones. Otherwise raises a non-retryable ``ApplicationError`` naming the
    failed models.

    Example::

        by_model = await multi_model.run_fan_out(
            assess, base="assess", models=["claude-opus-4-20250514", "gpt-4o"],
            results={"parse": parsed})
    """
    step_names = fan_out_names(base, models, names)
    need = len(models) if quorum is None else quorum
    outcomes = await asyncio.gather(
        *(
            run_step(step, with_model(args, m), name=n, results=results, options=options)
            for m, n in step_names.items()
        ),
        return_exceptions=True,
    )
    by_model: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for model, outcome in zip(step_names, outcomes, strict=True):
        if isinstance(outcome, ActivityError):
            failures[model] = str(outcome.cause or outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            by_model[model] = outcome
    if len(by_model) < need:
        raise ApplicationError(
            f"fan-out {base!r}: {len(by_model)} of {len(models)} models succeeded, {need} "
            "needed; failed: " + "; ".join(f"{m}: {e}" for m, e in failures.items()),
            {"failed": list(failures)},
            type="FanOutFailed",
            non_retryable=True,
        )
    return by_model


async def run_synthesis(
    step: StepRef | str,
    by_model: Mapping[str, dict[str, Any]],
    *,
    base: str,
    model: str | None = None,
    args: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    all_models: Sequence[str] | None = None,
    options: StepOptions | None = None,
) -> dict[str, Any]:
    """In workflow code: run the synthesis step ``{base}_synthesis`` over ``by_model``.

    The step sees the same job as in a declared flow: :func:`collect_fan_results`
    returns ``by_model``, :func:`model_for` returns ``model`` (default: the first model).

    Example::

        consensus = await multi_model.run_synthesis(synthesize, by_model, base="assess")
    """
    models = list(all_models or by_model)
    step_names = fan_out_names(base, models, names)
    synth_model = model or models[0]
    synth_args = {
        **(args or {}),
        MODEL_ARG: synth_model,
        FAN_OUT_MODELS_ARG: {n: m for m, n in step_names.items()},
    }
    results = {step_names[m]: r for m, r in by_model.items()}
    return await run_step(
        step, synth_args, name=synthesis_name(base), results=results, options=options
    )
