"""Fan-out and synthesis in workflow code: the hand-written form of ``multi_model.fan_out``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from ..flow._names import (
    FAN_OUT_MODELS_ARG,
    MODEL_ARG,
    fan_out_names,
    synthesis_name,
    with_model,
)
from ..flow._options import StepOptions, StepRef
from ._batch import BatchOptions, run_batch_fan_out
from ._outcomes import FAN_OUT_FAILED_ERROR, answers_by_model
from ._quorum import STRAGGLER_HEARTBEAT_TIMEOUT
from ._runtime import run_step
from ._versioning import FAN_OUT_QUORUM_EARLY

__all__ = ["FanOutResults", "run_fan_out", "run_synthesis"]


class FanOutResults(dict[str, dict[str, Any]]):
    """What :func:`run_fan_out` returns: ``{model: result}`` of the models that succeeded
    in time (a plain dict to everything else).

    ``stragglers`` lists the models still running when the quorum was met: cancelled
    (``cancel_stragglers=True``, the default) or still running. With
    ``cancel_stragglers=False``, ``await by_model.finish()`` waits for them and returns
    every model that succeeded, stragglers included.

    Example::

        by_model = await multi_model.run_fan_out(assess, base="assess", models=MODELS,
                                                 quorum=2, cancel_stragglers=False)
        synthesis = await multi_model.run_synthesis(synthesize, by_model, base="assess")
        everyone = await by_model.finish()   # the third model too, once it is done
    """

    def __init__(
        self,
        results: Mapping[str, dict[str, Any]] = (),  # type: ignore[assignment]
        stragglers: Sequence[str] = (),
        running: Mapping[str, asyncio.Future[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(results)
        self.stragglers: list[str] = list(stragglers)
        self._running = dict(running or {})

    async def finish(self) -> dict[str, dict[str, Any]]:
        """Wait for the stragglers still running; every model's result that succeeded."""
        everyone = dict(self)
        for model, future in self._running.items():
            try:
                everyone[model] = await future
            except (ActivityError, asyncio.CancelledError):
                continue
        return everyone


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
    cancel_stragglers: bool = True,
    batch: bool | BatchOptions = False,
) -> dict[str, dict[str, Any]]:
    """In workflow code: run ``step`` once per model, concurrently; ``{model: result}``.

    Steps are named and given args exactly as :func:`fan_out` does. Without ``quorum``
    every model must succeed; with it, it returns as soon as ``quorum`` models succeeded
    (a :class:`FanOutResults` holding those), and the models still running are cancelled,
    or with ``cancel_stragglers=False`` left running (``await result.finish()`` collects
    them). If too few can succeed, raises a non-retryable ``ApplicationError`` naming the
    failed models. ``batch=True`` (or a :class:`BatchOptions`) sends the models' LLM calls
    through the providers' batch APIs at the batch price (see docs/batch.md).

    Example::

        by_model = await multi_model.run_fan_out(
            assess, base="assess", models=["claude-opus-4-20250514", "gpt-4o"],
            results={"parse": parsed})
    """
    if batch:
        # Only runs that asked for batch take this path: no older history has it.
        return await run_batch_fan_out(
            step,
            base=base,
            models=models,
            batch=batch if isinstance(batch, BatchOptions) else BatchOptions(),
            args=args,
            results=results,
            quorum=quorum,
            names=names,
            options=options,
        )
    step_names = fan_out_names(base, models, names)
    if quorum is not None and workflow.patched(FAN_OUT_QUORUM_EARLY):
        return await _fan_out_quorum(
            step, base, step_names, args, results, quorum, options, cancel_stragglers
        )
    need = len(models) if quorum is None else quorum
    outcomes = await asyncio.gather(
        *(
            run_step(step, with_model(args, m), name=n, results=results, options=options)
            for m, n in step_names.items()
        ),
        return_exceptions=True,
    )
    return answers_by_model(base, step_names, outcomes, need)


async def _fan_out_quorum(
    step: StepRef | str,
    base: str,
    step_names: Mapping[str, str],
    args: Mapping[str, Any] | None,
    results: Mapping[str, Any] | None,
    quorum: int,
    options: StepOptions | None,
    cancel_stragglers: bool,
) -> FanOutResults:
    models = list(step_names)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= len(models):
        raise ApplicationError(
            f"fan-out {base!r}: quorum must be a whole number from 1 to {len(models)} (the "
            f"number of models), got {quorum!r}",
            type=FAN_OUT_FAILED_ERROR,
            non_retryable=True,
        )
    if cancel_stragglers and quorum < len(models):
        options = _straggler_options(step, options)
    running = {
        m: asyncio.ensure_future(
            run_step(step, with_model(args, m), name=n, results=results, options=options)
        )
        for m, n in step_names.items()
    }
    by_model: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    open_models = list(models)
    while open_models and len(by_model) < quorum and len(by_model) + len(open_models) >= quorum:
        await workflow.wait([running[m] for m in open_models], return_when=asyncio.FIRST_COMPLETED)
        for model in [m for m in open_models if running[m].done()]:  # in model order
            open_models.remove(model)
            error = running[model].exception()
            if isinstance(error, ActivityError):
                failures[model] = str(error.cause or error)
            elif error is not None:
                raise error
            else:
                by_model[model] = running[model].result()
    if cancel_stragglers:
        for model in open_models:
            running[model].cancel()
        # Cancelled with TRY_CANCEL: each resolves at once, the activity stops at its
        # next heartbeat. Awaited so that no step is left unobserved.
        await asyncio.gather(*(running[m] for m in open_models), return_exceptions=True)
    if len(by_model) < quorum:
        stopped = (
            f"; cancelled: {', '.join(open_models)}" if cancel_stragglers and open_models else ""
        )
        raise ApplicationError(
            f"fan-out {base!r}: {len(by_model)} of {len(models)} models succeeded, {quorum} "
            "needed; failed: " + "; ".join(f"{m}: {e}" for m, e in failures.items()) + stopped,
            {"failed": list(failures), "cancelled": open_models if cancel_stragglers else []},
            type=FAN_OUT_FAILED_ERROR,
            non_retryable=True,
        )
    return FanOutResults(
        by_model,
        stragglers=open_models,
        running={} if cancel_stragglers else {m: running[m] for m in open_models},
    )


def _straggler_options(step: StepRef | str, options: StepOptions | None) -> StepOptions:
    """A shorter heartbeat for steps that may be cancelled, so they see it soon."""
    options = options or StepOptions()
    defaults = step.options if isinstance(step, StepRef) else StepOptions()
    merged = options.merged_over(defaults)
    if merged.heartbeat_timeout is not None or merged.local:
        return options
    return replace(options, heartbeat_timeout=STRAGGLER_HEARTBEAT_TIMEOUT)


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
