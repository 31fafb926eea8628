"""Different models per step, and one step fanned out across several models.

Per-step models: record a model map on the flow; ``add`` then puts the mapped model
into the step's args as ``"workflow_model"``, and the step reads it with
:func:`model_for`::

    flow = (
        baton.new(workflow_name="analysis")
        .pipe(multi_model.configure, {"parse": "claude-sonnet-4-20250514",
                                      "assess": "claude-opus-4-20250514"})
        .add("parse", parse_doc, {"text": text})
        .add("assess", assess, deps=["parse"])
    )

    @baton.step
    async def assess(job: baton.Job) -> dict:
        model = multi_model.model_for(job, "claude-sonnet-4-20250514")

Fan-out: one step per model, plus an optional synthesis step that depends on all of
them and reads their results keyed by model with :func:`collect_fan_results`::

    flow = flow.pipe(multi_model.fan_out, "assess", assess,
                     models=["claude-sonnet-4-20250514", "gpt-4o"], deps=["parse"],
                     synthesize_with=synthesize)
    # steps: assess_sonnet_4, assess_gpt_4o, assess_synthesis

The same operations exist for hand-written ``@workflow.defn`` classes:
:func:`run_fan_out` and :func:`run_synthesis`.
"""

from __future__ import annotations

import difflib
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .flow._builder import Flow
from .flow._errors import FanInError, FlowError
from .flow._names import (
    FAN_OUT_MODELS_ARG,
    MODEL_ARG,
    short_name,
    synthesis_name,
    with_model,
)
from .flow._names import fan_out_names as _fan_out_names
from .flow._options import StepOptions, StepRef
from .steps._job import Job
from .workflow._batch import BatchOptions
from .workflow._fan_out import FanOutResults, run_fan_out, run_synthesis

__all__ = [
    "FAN_OUT_MODELS_ARG",
    "MODEL_ARG",
    "BatchOptions",
    "FanInError",
    "FanOutResults",
    "collect_fan_results",
    "configure",
    "fan_out",
    "fan_out_models",
    "fan_out_names",
    "majority_vote",
    "median_of",
    "model_for",
    "run_fan_out",
    "run_synthesis",
    "short_name",
    "synthesis_name",
    "with_model",
]

_FAN_OUT_OPTIONS = (
    "models",
    "args",
    "deps",
    "synthesize_with",
    "synthesize_model",
    "synthesize_args",
    "quorum",
    "cancel_stragglers",
    "names",
    "options",
    "batch",
)


# -- names ------------------------------------------------------------------------------


def fan_out_names(
    base: str, models: Sequence[str], names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``{model: step_name}`` for a fan-out of ``base`` across ``models``, refusing a
    model that no provider serves.

    Example::

        fan_out_names("assess", ["claude-opus-4-20250514", "gpt-4o"])
        # {"claude-opus-4-20250514": "assess_opus_4", "gpt-4o": "assess_gpt_4o"}
    """
    if not isinstance(models, str):
        for model in models or ():
            if isinstance(model, str) and model.strip():
                _check_model(f"fan_out({base!r})", model)
    return _fan_out_names(base, models, names)


def _check_model(where: str, model: Any) -> None:
    # At build time, not when the step calls it: a model no provider serves would
    # otherwise fail the run only after the steps before it were paid for.
    if not isinstance(model, str):
        raise FlowError(f"{where}: {model!r} is not a model string")
    from .llm import UnknownModelError, resolve_provider  # the LLM layer only when building

    try:
        resolve_provider(model)
    except UnknownModelError as err:
        raise FlowError(f"{where}: {getattr(err, 'message', err)}") from None


# -- per-step models --------------------------------------------------------------------


def configure(flow: Flow, models: Mapping[str, str]) -> Flow:
    """Record a model map ``{step_name: model}`` on the flow.

    Steps added *afterwards* whose name is in the map get ``"workflow_model"`` in their
    args; other steps are added exactly as a plain ``add``. Configure before adding the
    steps it names: naming a step that is already in the flow raises :class:`FlowError`
    rather than silently leaving it without its model. Calling it again replaces the map.

    Example::

        flow = baton.new(workflow_name="a").pipe(multi_model.configure, {"parse": "gpt-4o"})
    """
    if not isinstance(models, Mapping):
        raise FlowError(
            f"configure() takes a mapping {{step_name: model}}, got {type(models).__name__}"
        )
    for step_name, model in models.items():
        if not isinstance(model, str) or not model.strip():
            raise FlowError(
                f"configure(): the model for {step_name!r} must be a model string such as "
                f"'claude-sonnet-4-20250514', got {model!r}"
            )
        _check_model(f"configure(): the model for {step_name!r}", model)
    already = [name for name in models if name in flow.step_names]
    if already:
        raise FlowError(
            f"configure() names steps already added: {already}; call configure before "
            "adding them (the model is injected when a step is added), or pass "
            f"{{'{MODEL_ARG}': ...}} in their args"
        )
    return flow.with_models({str(k): v for k, v in models.items()})


def model_for(job: Job, default: str) -> str:
    """The model configured for this step, else ``default``.

    Example::

        model = multi_model.model_for(job, "claude-sonnet-4-20250514")
    """
    value = job.args.get(MODEL_ARG)
    return value if isinstance(value, str) and value else default


# -- fan-out ----------------------------------------------------------------------------


def fan_out(flow: Flow, base: str, step: StepRef | str, **options: Any) -> Flow:
    """Add one ``step`` per model, named ``{base}_{short}``, and optionally a synthesis.

    Options: ``models`` (required), ``args`` (shared by every model's step), ``deps``
    (shared), ``synthesize_with`` (the synthesis step; omit for none),
    ``synthesize_model`` (default: the first model), ``synthesize_args`` (merged into
    the synthesis args), ``quorum`` (run synthesis as soon as this many models
    succeeded; default: all must), ``cancel_stragglers`` (with ``quorum``: cancel the
    models still running when synthesis starts, the default; ``False`` lets them finish
    and keeps their results in the flow's results), ``names`` (``{model: short}`` to
    name models explicitly), ``options`` (a :class:`StepOptions` for the model steps),
    ``batch`` (``True`` or a :class:`BatchOptions`: the model steps' LLM calls go through
    the providers' batch APIs at the batch price; see docs/batch.md).

    Example::

        flow.pipe(multi_model.fan_out, "assess", assess,
                  models=["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"],
                  args={"doc_id": "doc-123"}, deps=["parse"],
                  synthesize_with=synthesize_assessments,
                  synthesize_model="claude-opus-4-20250514")
    """
    unknown = [k for k in options if k not in _FAN_OUT_OPTIONS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, _FAN_OUT_OPTIONS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise FlowError(
            f"fan_out({base!r}) got unknown option(s) {', '.join(hints)}; the options are "
            f"{', '.join(_FAN_OUT_OPTIONS)}"
        )
    if "models" not in options:
        raise FlowError(f"fan_out({base!r}) needs models=[...], the model strings to fan out to")
    models: list[str] = list(options["models"]) if not isinstance(options["models"], str) else []
    if isinstance(options["models"], str):
        raise FlowError(
            f"fan_out({base!r}): models must be a list, not the string {options['models']!r}; "
            f"write models=[{options['models']!r}]"
        )
    names = fan_out_names(base, models, options.get("names"))
    synth = options.get("synthesize_with")
    planned = list(names.values()) + ([synthesis_name(base)] if synth is not None else [])
    clash = [n for n in planned if n in flow.step_names]
    if clash:
        raise FlowError(
            f"fan_out({base!r}) would add steps {clash}, which the flow already has; "
            "choose another base name"
        )
    quorum = options.get("quorum")
    if quorum is not None and (
        not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= len(models)
    ):
        raise FlowError(
            f"fan_out({base!r}): quorum must be a whole number from 1 to {len(models)} "
            f"(the number of models), got {quorum!r}"
        )
    cancel = options.get("cancel_stragglers")
    if cancel is not None and not isinstance(cancel, bool):
        raise FlowError(
            f"fan_out({base!r}): cancel_stragglers must be True or False, got {cancel!r}"
        )
    if cancel is not None and quorum is None and synth is not None:
        raise FlowError(
            f"fan_out({base!r}): cancel_stragglers applies only with quorum=k (synthesis "
            "then starts at k and the other models are stragglers); add quorum or drop it"
        )
    if options.get("synthesize_model") is not None:
        _check_model(f"fan_out({base!r}): synthesize_model", options["synthesize_model"])
    if synth is None:
        for key in ("synthesize_model", "synthesize_args", "quorum", "cancel_stragglers"):
            if options.get(key) is not None:
                raise FlowError(
                    f"fan_out({base!r}): {key} has no effect without synthesize_with; add "
                    "synthesize_with=<step> or drop it"
                )
    args = options.get("args") or {}
    deps = list(options.get("deps") or [])
    step_options: StepOptions | None = options.get("options")
    batch = _batch_entries(base, models, options.get("batch"))
    for model, step_name in names.items():
        flow = flow.add(
            step_name,
            step,
            with_model(args, model),
            deps=deps,
            options=step_options,
            _fan_out={"base": base, "model": model, **batch},
        )
    if synth is not None:
        synthesize_model = options.get("synthesize_model") or models[0]
        synth_args = {
            **(options.get("synthesize_args") or {}),
            MODEL_ARG: synthesize_model,
            FAN_OUT_MODELS_ARG: {step_name: model for model, step_name in names.items()},
        }
        flow = flow.add(
            synthesis_name(base),
            synth,
            synth_args,
            deps=list(names.values()),
            quorum=quorum,
            cancel_stragglers=cancel,
            _fan_out={"base": base, "model": synthesize_model},
        )
    return flow


def _batch_entries(base: str, models: Sequence[str], batch: Any) -> dict[str, str]:
    """The ``fan_out`` entries that mark the model steps as batch steps (none without)."""
    if batch is None or batch is False:
        return {}
    if batch is not True and not isinstance(batch, BatchOptions):
        raise FlowError(
            f"fan_out({base!r}): batch must be True, False or a BatchOptions, got {batch!r}"
        )
    from .llm import resolve_provider
    from .llm._batch import BATCH_PROVIDERS

    for model in models:
        provider, _name = resolve_provider(model)
        if provider not in BATCH_PROVIDERS:
            raise FlowError(
                f"fan_out({base!r}, batch=True): {model!r} is served by an {provider} server, "
                "which has no batch API (only Anthropic and OpenAI have one); drop "
                "batch=True or fan out to Anthropic / OpenAI models only"
            )
    return (batch if isinstance(batch, BatchOptions) else BatchOptions()).to_fan_out()


def fan_out_models(flow: Flow, base: str) -> dict[str, str]:
    """``{step_name: model}`` of the fan-out ``base`` in ``flow``.

    Pass it as ``{"fan_out_models": ...}`` in the args of your own downstream step
    (when there is no ``synthesize_with``) so that :func:`collect_fan_results` works there.
    """
    found = {
        s.name: s.fan_out["model"]
        for s in flow.spec.steps
        if s.fan_out and s.fan_out.get("base") == base and s.name != synthesis_name(base)
    }
    if not found:
        raise FlowError(f"flow {flow.workflow_name!r} has no fan-out named {base!r}")
    return found


def collect_fan_results(job: Job) -> dict[str, Any]:
    """Each model's result, keyed by the full model string.

    Only models whose step completed are present (with a ``quorum``, the failed ones are
    left out).

    Example::

        by_model = multi_model.collect_fan_results(job)
        # {"claude-sonnet-4-20250514": {"score": 7}, "gpt-4o": {"score": 6}}
    """
    mapping = job.args.get(FAN_OUT_MODELS_ARG)
    if not isinstance(mapping, Mapping):
        raise FanInError(
            f"step {job.step!r} is not a fan-out synthesis: its args have no "
            f"{FAN_OUT_MODELS_ARG!r}; use it in the synthesize_with step of fan_out, or pass "
            f"{{{FAN_OUT_MODELS_ARG!r}: multi_model.fan_out_models(flow, base)}} in its args"
        )
    return {model: job.results[name] for name, model in mapping.items() if name in job.results}


# -- hand-written workflows -------------------------------------------------------------


# -- ready synthesis helpers ------------------------------------------------------------


def median_of(by_model: Mapping[str, Mapping[str, Any]], field: str) -> dict[str, Any]:
    """The median of a numeric ``field`` across models, with each model's value.

    Models whose result lacks the field (or holds a non-number) are listed in
    ``"missing"`` and left out of the median.

    Example::

        multi_model.median_of({"a": {"score": 7}, "b": {"score": 9}}, "score")
        # {"median": 8.0, "values": {"a": 7, "b": 9}, "missing": []}
    """
    values: dict[str, float] = {}
    missing: list[str] = []
    for model, result in by_model.items():
        value = result.get(field) if isinstance(result, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[model] = value
        else:
            missing.append(model)
    if not values:
        raise FanInError(
            f"no model returned a number in {field!r} (models: {sorted(by_model)}); "
            "check the field name"
        )
    return {
        "median": statistics.median(values.values()),
        "values": values,
        "missing": missing,
    }


def majority_vote(by_model: Mapping[str, Mapping[str, Any]], field: str) -> dict[str, Any]:
    """The most common value of ``field`` across models.

    Ties go to the value given by the earliest model in ``by_model``'s order (the
    order of the fan-out's ``models``), so the result is stable. ``"agreement"`` is the
    winner's share of the votes cast.

    Example::

        multi_model.majority_vote({"a": {"label": "ok"}, "b": {"label": "ok"},
                                   "c": {"label": "bad"}}, "label")
        # {"winner": "ok", "votes": {"ok": 2, "bad": 1}, "agreement": 0.667, ...}
    """
    ballots = {
        model: result.get(field)
        for model, result in by_model.items()
        if isinstance(result, Mapping) and result.get(field) is not None
    }
    if not ballots:
        raise FanInError(
            f"no model returned a value in {field!r} (models: {sorted(by_model)}); "
            "check the field name"
        )
    counts = Counter(str(v) for v in ballots.values())
    top = max(counts.values())
    winner = next(v for v in ballots.values() if counts[str(v)] == top)
    return {
        "winner": winner,
        "votes": dict(counts),
        "agreement": round(top / len(ballots), 3),
        "ballots": ballots,
        "missing": [m for m in by_model if m not in ballots],
    }
