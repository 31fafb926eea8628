"""How fan-out steps are named and what args they get: shared by the flow builder and
the workflow helpers, so a declared fan-out and a hand-written one look the same."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._errors import FlowError

__all__ = [
    "FAN_OUT_MODELS_ARG",
    "MODEL_ARG",
    "fan_out_names",
    "short_name",
    "synthesis_name",
    "with_model",
]

MODEL_ARG = "workflow_model"
"""The args key a step's model is injected under."""
FAN_OUT_MODELS_ARG = "fan_out_models"
"""The synthesis step's args key mapping each fan-out step name to its model string."""

_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def short_name(model: str) -> str:
    """The short form of a model string used in step names.

    Drops a ``provider:`` prefix, a leading ``claude-`` and a trailing date; other
    non-alphanumerics become ``_``.

    Example::

        short_name("claude-sonnet-4-20250514")  # "sonnet_4"
        short_name("gpt-4o")                    # "gpt_4o"
        short_name("o3")                        # "o3"
    """
    name = model.split(":", 1)[1] if ":" in model else model
    name = name.removeprefix("claude-")
    name = _DATE_SUFFIX.sub("", name)
    return _NON_ALNUM.sub("_", name).strip("_")


def fan_out_names(
    base: str, models: Sequence[str], names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``{model: step_name}`` for a fan-out of ``base`` across ``models``.

    ``names`` sets the short name of some models explicitly (to resolve a clash).
    Raises :class:`FlowError` on an empty list, a model listed twice, or two models
    whose step names would be the same.

    Example::

        fan_out_names("assess", ["claude-opus-4-20250514", "gpt-4o"])
        # {"claude-opus-4-20250514": "assess_opus_4", "gpt-4o": "assess_gpt_4o"}
    """
    if isinstance(models, str) or not models:
        raise FlowError(
            f"fan_out({base!r}) needs models=[...], a non-empty list of model strings, "
            f"got {models!r}"
        )
    names = dict(names or {})
    for model in names:
        if model not in models:
            raise FlowError(f"fan_out({base!r}): names= mentions {model!r}, which is not in models")
    out: dict[str, str] = {}
    by_step: dict[str, str] = {}
    for model in models:
        if not isinstance(model, str) or not model.strip():
            raise FlowError(f"fan_out({base!r}): model {model!r} is not a model string")
        if model in out:
            raise FlowError(
                f"fan_out({base!r}): model {model!r} is listed twice; list each model once"
            )
        short = names.get(model) or short_name(model)
        if not short:
            raise FlowError(
                f"fan_out({base!r}): model {model!r} has no usable short name; give it one "
                f"with names={{{model!r}: 'my_name'}}"
            )
        step_name = f"{base}_{short}"
        if step_name in by_step:
            other = by_step[step_name]
            raise FlowError(
                f"fan_out({base!r}): models {other!r} and {model!r} would both be named "
                f"{step_name!r}; name them explicitly, e.g. "
                f"names={{{other!r}: '{short}_a', {model!r}: '{short}_b'}}"
            )
        out[model] = step_name
        by_step[step_name] = model
    return out


def synthesis_name(base: str) -> str:
    """The synthesis step's name: ``{base}_synthesis``."""
    return f"{base}_synthesis"


def with_model(args: Mapping[str, Any] | None, model: str) -> dict[str, Any]:
    """``args`` with ``"workflow_model"`` set to ``model``."""
    return {**(args or {}), MODEL_ARG: model}
