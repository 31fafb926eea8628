"""The flow as data: a versioned JSON schema, and the checks every flow passes.

This module runs in workflow code (the flow workflow parses its input with it), so it is
pure and deterministic: no I/O, no clocks, no randomness.

Schema (version 1)::

    {
      "baton_flow": 1,
      "workflow_name": "brief",
      "workflow_id": "brief-42",            # optional; the Temporal workflow id wins
      "debug": false,                       # save full LLM requests/responses
      "max_concurrency": null,              # at most this many steps running at once
      "max_history_events": null,           # continue as new past this (default 10,000)
      "budget_usd": null,                   # cap on the flow's LLM spend, e.g. "2.50"
      "models": {"parse": "claude-sonnet-4-20250514"},
      "steps": [
        {"name": "fetch", "step": "fetch_sources", "args": {"url": "..."}},
        {"name": "summarize", "step": "summarize", "deps": ["fetch"],
         "ignore_failed": false, "ignore_cancelled": false, "quorum": null,
         "cancel_stragglers": null,          # with quorum: false lets stragglers finish
         "options": {"start_to_close_timeout": 60, "local": false,
                     "retry": {"maximum_attempts": 3}, "budget_usd": "0.50"}}
      ]
    }
"""

from __future__ import annotations

import functools
import math
import re
import types
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._budget import check_budget
from ._json import find_non_json
from ._limits import (
    INT32_MAX,
    MAX_CONCURRENCY,
    MAX_JSON_DEPTH,
    duration_problem,
    error_type_problem,
    id_problem,
)

__all__ = [
    "FLOW_WORKFLOW_TYPE",
    "SCHEMA_VERSION",
    "BoolNumberError",
    "FlowSpec",
    "StepSpec",
    "check_flow",
    "parse_flow",
]

SCHEMA_VERSION: Literal[1] = 1
# The name under which the generic flow workflow is registered; `temporal workflow start
# --type baton.Flow` starts a flow from the command line.
FLOW_WORKFLOW_TYPE = "baton.Flow"
# Matched whole (fullmatch): "$" alone would let a trailing newline through ("a\n").
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,99}")
# Parsing with this context skips the bounds added in this release, for runs that started
# before it (see workflow/_versioning.py, STRICT_FLOW_INPUT).
LEGACY_CONTEXT = {"legacy": True}
# Parsing with this context reads a JSON boolean given for a number as that number
# (true = 1), as releases before BOOL_NUMBERS_REFUSED did: for replaying their runs.
BOOLS_AS_NUMBERS_CONTEXT = {"bools_as_numbers": True}
# The pydantic error type of a JSON boolean given where a number belongs.
BOOL_NUMBER = "bool_number"


class BoolNumberError(ValueError):
    """A flow gives a JSON boolean where a number belongs (``"heartbeat_timeout": true``).

    Pydantic would read true as 1 (one second, one attempt) and false as 0: a silent wrong
    value, so it is refused. Its own type lets the flow workflow refuse it only in runs
    started since (runs started before read it as a number, and replay that way)."""


def _has_bool_numbers(err: ValidationError) -> bool:
    return any(e["type"] == BOOL_NUMBER for e in err.errors())


def pydantic_problems(err: ValidationError, where: str = "flow") -> list[str]:
    """Pydantic's errors as "field: problem" lines, without its "Value error, " prefix."""
    return [
        f"{'.'.join(str(p) for p in e['loc']) or where}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors()
    ]


def _legacy(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("legacy"))


def _numeric(annotation: Any) -> bool:
    """Whether a field of this type takes a number of seconds or a count (and not also a
    bool). Budgets (Decimal) are left to their own check, which names dollars."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = set(get_args(annotation))
    else:
        kinds = {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or _legacy(info):
            return data
        if info.context and info.context.get("bools_as_numbers"):
            return data
        if any(isinstance(data.get(k), bool) for k in _numeric_fields(cls)):
            # Raising here stops pydantic before the nested models: name theirs too, so
            # that one round of fixes is enough.
            bad = _bools_for_numbers(cls, data)
            raise PydanticCustomError(
                BOOL_NUMBER,
                "{fields} {verb} where {what} ({it} would be read as 1 or 0); write the number "
                "itself, e.g. 30 (seconds) or 3 (attempts), or leave the key out for the default",
                {
                    "fields": ", ".join(bad),
                    "verb": "is a JSON boolean" if len(bad) == 1 else "are JSON booleans",
                    "what": "a number belongs" if len(bad) == 1 else "numbers belong",
                    "it": "it" if len(bad) == 1 else "they",
                },
            )
        return data


def _bools_for_numbers(cls: type[_Frozen], data: dict[str, Any], path: str = "") -> list[str]:
    """Every ``field=true`` given for a number in ``data`` and the models nested in it."""
    out = [
        f"{path}{k}={str(data[k]).lower()}"
        for k in _numeric_fields(cls)
        if isinstance(data.get(k), bool)
    ]
    for key, model in _nested_models(cls).items():
        value = data.get(key)
        items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for i, item in items:
            if isinstance(item, dict):
                where = f"{path}{key}." if i is None else f"{path}{key}.{i}."
                out += _bools_for_numbers(model, item, where)
    return out


@functools.cache
def _nested_models(cls: type[_Frozen]) -> dict[str, type[_Frozen]]:
    out: dict[str, type[_Frozen]] = {}
    for name, f in cls.model_fields.items():
        kinds = [f.annotation, *get_args(f.annotation)]
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, _Frozen)), None)
        if model is None and cls is StepSpec and name == "options":
            model = OptionsSpec  # a dict here, checked as OptionsSpec by its validator
        if model is not None:
            out[name] = model
    return out


@functools.cache
def _numeric_fields(cls: type[_Frozen]) -> tuple[str, ...]:
    return tuple(name for name, f in cls.model_fields.items() if _numeric(f.annotation))


class RetrySpec(_Frozen):
    """A step's retry policy, in seconds (Temporal's ``RetryPolicy``).

    A field left out takes the library default (``DEFAULT_RETRY``: 1 s doubling to 60 s,
    10 attempts), not Temporal's (unlimited attempts): ``{"initial_interval": 2}`` means
    "10 attempts, starting 2 s apart". ``maximum_attempts: 0`` asks for no limit.
    """

    initial_interval: float | None = Field(default=None, gt=0)
    backoff_coefficient: float | None = Field(default=None, ge=1)
    maximum_interval: float | None = Field(default=None, gt=0)
    maximum_attempts: int | None = Field(default=None, ge=0, description="0: no limit")
    non_retryable_error_types: list[str] | None = None

    @model_validator(mode="after")
    def _within_temporal_bounds(self, info: ValidationInfo) -> RetrySpec:
        if _legacy(info):
            return self
        problems = [
            p
            for p in (
                duration_problem("retry.initial_interval", self.initial_interval)
                if self.initial_interval is not None
                else None,
                duration_problem("retry.maximum_interval", self.maximum_interval)
                if self.maximum_interval is not None
                else None,
            )
            if p
        ]
        coefficient = self.backoff_coefficient
        if coefficient is not None and not math.isfinite(coefficient):
            problems.append(f"retry.backoff_coefficient is {coefficient!r}; use e.g. 2.0")
        if self.maximum_attempts is not None and self.maximum_attempts > INT32_MAX:
            problems.append(
                f"retry.maximum_attempts is {self.maximum_attempts}, beyond Temporal's "
                f"int32 limit {INT32_MAX:,}; use a smaller number, or 0 for no limit"
            )
        first = 1.0 if self.initial_interval is None else self.initial_interval
        if self.maximum_interval is not None and self.maximum_interval < first:
            problems.append(
                f"retry.maximum_interval ({self.maximum_interval} s) is below "
                f"retry.initial_interval ({first} s); Temporal refuses that: make "
                "maximum_interval >= initial_interval"
            )
        for kind in self.non_retryable_error_types or ():
            bad = error_type_problem("a retry.non_retryable_error_types entry", kind)
            if bad:
                problems.append(bad)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class OptionsSpec(_Frozen):
    """A step's execution options as JSON; timeouts in seconds."""

    start_to_close_timeout: float | None = Field(default=None, gt=0)
    schedule_to_close_timeout: float | None = Field(default=None, gt=0)
    schedule_to_start_timeout: float | None = Field(default=None, gt=0)
    heartbeat_timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None
    task_queue: str | None = Field(default=None, min_length=1)
    local: bool | None = None
    budget_usd: Decimal | None = None

    _budget = field_validator("budget_usd", mode="before")(
        classmethod(lambda cls, v: _budget_or_none(v, "options.budget_usd"))
    )

    @model_validator(mode="after")
    def _within_temporal_bounds(self, info: ValidationInfo) -> OptionsSpec:
        if _legacy(info):
            return self
        problems: list[str] = []
        for key in (
            "start_to_close_timeout",
            "schedule_to_close_timeout",
            "schedule_to_start_timeout",
            "heartbeat_timeout",
        ):
            value = getattr(self, key)
            bad = duration_problem(key, value) if value is not None else None
            if bad:
                problems.append(bad)
        beat, run = self.heartbeat_timeout, self.start_to_close_timeout
        if beat is not None and run is not None and beat > run:
            problems.append(
                f"heartbeat_timeout ({beat} s) is longer than start_to_close_timeout "
                f"({run} s), so it could never fire; make it shorter (steps heartbeat on "
                "their own every third of it)"
            )
        whole = self.schedule_to_close_timeout
        if whole is not None and run is not None and run > whole:
            problems.append(
                f"start_to_close_timeout ({run} s) is longer than schedule_to_close_timeout "
                f"({whole} s), which bounds all attempts together; make it shorter"
            )
        if self.task_queue is not None:
            bad = id_problem("task_queue", self.task_queue, task_queue=True)
            if bad:
                problems.append(bad)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StepSpec(_Frozen):
    """One node of a flow."""

    name: str
    step: str = Field(min_length=1, description="the registered step (activity) name")
    args: dict[str, Any] = Field(default_factory=dict)
    deps: tuple[str, ...] = ()
    ignore_failed: bool = False
    ignore_cancelled: bool = False
    quorum: int | None = Field(default=None, ge=1)
    """Run once at least this many dependencies completed, tolerating the others'
    failure or cancellation (the multi-model "k of n" rule)."""
    cancel_stragglers: bool | None = None
    """With ``quorum``: cancel the dependencies still running when the quorum is met
    (None, the default, means yes); ``false`` lets them finish."""
    options: dict[str, Any] = Field(default_factory=dict)
    fan_out: dict[str, str] | None = None
    """For steps made by ``multi_model.fan_out``: ``{"base": ..., "model": ...}``."""

    @field_validator("step")
    @classmethod
    def _step_is_an_activity_type(cls, step: str, info: ValidationInfo) -> str:
        bad = None if _legacy(info) else id_problem("the step reference", step)
        if bad:
            raise ValueError(bad + "; name a step registered with @baton.step")
        return step

    @field_validator("args")
    @classmethod
    def _args_are_json(cls, args: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        bad = None if _legacy(info) else find_non_json(args, "args", max_depth=MAX_JSON_DEPTH)
        if bad:
            raise ValueError(
                f"{bad}; args hold only str, int, float, bool, None, lists and dicts with "
                f"string keys, nested at most {MAX_JSON_DEPTH} deep"
            )
        return args

    @field_validator("options")
    @classmethod
    def _options_are_sound(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Checked here, when the flow is read: a bad value found later, in the workflow,
        # would fail every workflow task and leave the run stuck.
        try:
            checked = OptionsSpec.model_validate(options, context=info.context)
        except ValidationError as err:
            problems = "; ".join(pydantic_problems(err, "options"))
            message = (
                f"bad step options ({problems}); timeouts are seconds > 0, e.g. "
                '{"start_to_close_timeout": 60, "retry": {"maximum_attempts": 3}}'
            )
            if _has_bool_numbers(err):
                # Keeps its type up to parse_flow (BoolNumberError).
                raise PydanticCustomError(BOOL_NUMBER, "{message}", {"message": message}) from None
            raise ValueError(message) from None
        # Unset fields stay unset: a partial retry spec merges over the library's defaults
        # when the options are used (StepOptions.from_json).
        return checked.model_dump(exclude_none=True, mode="json")


class FlowSpec(_Frozen):
    """A whole flow; what ``Flow.to_json`` writes and the DAG workflow runs."""

    baton_flow: Literal[1] = SCHEMA_VERSION
    workflow_name: str = Field(min_length=1)
    workflow_id: str | None = None
    debug: bool = False
    max_concurrency: int | None = Field(default=None, ge=1)
    max_history_events: int | None = Field(default=None, ge=20, le=40_000)
    models: dict[str, str] = Field(default_factory=dict)
    steps: tuple[StepSpec, ...] = ()
    budget_usd: Decimal | None = None
    """Cap on the flow's LLM spend in USD (see flow/_budget.py); None: no cap."""

    _budget = field_validator("budget_usd", mode="before")(
        classmethod(lambda cls, v: _budget_or_none(v, "budget_usd"))
    )

    @field_validator("workflow_name", "workflow_id")
    @classmethod
    def _names_fit_temporal(cls, value: str | None, info: ValidationInfo) -> str | None:
        bad = None if value is None or _legacy(info) else id_problem(str(info.field_name), value)
        if bad:
            raise ValueError(bad)
        return value

    @field_validator("max_concurrency")
    @classmethod
    def _concurrency_can_take_effect(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value > MAX_CONCURRENCY and not _legacy(info):
            raise ValueError(
                f"max_concurrency is {value:,}; Temporal keeps at most {MAX_CONCURRENCY:,} "
                "activities of a run pending (limit.numPendingActivities.error), so use "
                f"1..{MAX_CONCURRENCY:,}, or leave it out for no limit"
            )
        return value

    @field_validator("steps")
    @classmethod
    def _not_empty(cls, steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
        if not steps:
            raise ValueError("a flow needs at least one step; add one with .add(name, step)")
        return steps


def _budget_or_none(value: Any, where: str) -> Decimal | None:
    return None if value is None else check_budget(value, where)


def name_problem(name: Any, what: str = "step name") -> str | None:
    if not isinstance(name, str) or not name:
        return f"{what} {name!r} is empty or not a string; use a name like 'parse_doc'"
    if not NAME_RE.fullmatch(name):
        return (
            f"{what} {name!r} is not valid; use letters, digits, '_' or '-', starting with "
            "a letter or '_', at most 100 characters (e.g. 'parse_doc')"
        )
    return None


def check_flow(spec: FlowSpec) -> list[str]:
    """Every problem with the flow's graph, as messages that say how to fix them."""
    problems: list[str] = []
    seen: set[str] = set()
    for s in spec.steps:
        bad = name_problem(s.name)
        if bad:
            problems.append(bad)
        if s.name in seen:
            problems.append(
                f"step name {s.name!r} is used twice; each step of a flow needs its own name"
            )
        seen.add(s.name)
    for s in spec.steps:
        for dep in s.deps:
            if dep not in seen:
                # In flow order, not set order: this runs in workflow code.
                close = [
                    t.name for t in spec.steps if t.name.lower() == dep.lower() or dep in t.name
                ]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    f"step {s.name!r} depends on {dep!r}, which is not a step of this "
                    f"flow{hint}; add {dep!r} to the flow or remove it from deps"
                )
            if dep == s.name:
                problems.append(f"step {s.name!r} depends on itself; remove it from its deps")
        if len(set(s.deps)) != len(s.deps):
            problems.append(f"step {s.name!r} lists a dependency twice: {list(s.deps)}")
        if s.quorum is not None and not s.deps:
            problems.append(
                f"step {s.name!r} has quorum={s.quorum} but no dependencies; remove quorum"
            )
        elif s.quorum is not None and s.quorum > len(s.deps):
            problems.append(
                f"step {s.name!r} has quorum={s.quorum} but only {len(s.deps)} dependencies; "
                f"use a quorum between 1 and {len(s.deps)}"
            )
        if s.cancel_stragglers is not None and s.quorum is None:
            problems.append(
                f"step {s.name!r} sets cancel_stragglers but has no quorum; it only applies "
                "with quorum=k (drop it or add a quorum)"
            )
    if not problems:
        cycle = find_cycle(spec)
        if cycle:
            problems.append(
                "the flow has a cycle: "
                + " -> ".join(cycle)
                + "; remove one of these dependencies so that the steps form a DAG"
            )
    return problems


def find_cycle(spec: FlowSpec) -> list[str] | None:
    """A cycle of the flow's dependencies, in run order (``a -> b``: a runs before b).

    Iterative, so a chain of any length is checked in linear time without recursion.
    """
    deps = {s.name: s.deps for s in spec.steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for s in spec.steps:
        if s.name in state:
            continue
        path: list[str] = [s.name]
        todo: list[Iterator[str]] = [iter(deps.get(s.name, ()))]
        state[s.name] = 1
        while todo:
            dep = next(todo[-1], None)
            if dep is None:
                state[path.pop()] = 2
                todo.pop()
                continue
            if state.get(dep) == 1:
                # The path runs from dependents to dependencies: reverse it to run order.
                return list(reversed([*path[path.index(dep) :], dep]))
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                todo.append(iter(deps.get(dep, ())))
    return None


def parse_flow(data: Any, *, legacy: bool = False, bools_as_numbers: bool = False) -> FlowSpec:
    """Validate JSON data as a flow. Raises ``ValueError`` with every problem listed
    (:class:`BoolNumberError` when one of them is a JSON boolean given for a number).

    ``legacy=True`` skips the bounds added in this release (for replaying runs that
    started before it); the graph checks apply either way. ``bools_as_numbers=True``
    reads ``true`` given for a number as 1, as runs started before BOOL_NUMBERS_REFUSED
    did.
    """
    if not isinstance(data, dict):
        raise ValueError(
            f"a flow must be a JSON object, got {_json_type(data)}; see "
            "Flow.to_json() for the schema"
        )
    version = data.get("baton_flow")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ValueError(
            f"unsupported flow schema version {version!r}: this baton-temporal reads "
            f'"baton_flow": {SCHEMA_VERSION}; write the flow with this version\'s '
            "Flow.to_json(), or upgrade the workers"
        )
    context = LEGACY_CONTEXT if legacy else BOOLS_AS_NUMBERS_CONTEXT if bools_as_numbers else None
    try:
        spec = FlowSpec.model_validate(data, context=context)
    except ValidationError as err:
        lines = pydantic_problems(err)
        kind = BoolNumberError if _has_bool_numbers(err) else ValueError
        raise kind("invalid flow: " + summarise(lines)) from None
    problems = check_flow(spec)
    if problems:
        raise ValueError("invalid flow: " + summarise(problems))
    return spec


def summarise(problems: list[str], limit: int = 10) -> str:
    """The first ``limit`` problems, and how many more: a failure message stays short
    enough for Temporal to store however broken the flow is."""
    shown = [p if len(p) <= 2000 else p[:1997] + "..." for p in problems[:limit]]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more problem(s)" if more else "")


def _json_type(data: Any) -> str:
    names = {list: "list (a JSON array)", str: "str (a JSON string)", type(None): "null"}
    return names.get(type(data), type(data).__name__)
