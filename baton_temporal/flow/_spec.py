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
      "models": {"parse": "claude-sonnet-4-20250514"},
      "steps": [
        {"name": "fetch", "step": "fetch_sources", "args": {"url": "..."}},
        {"name": "summarize", "step": "summarize", "deps": ["fetch"],
         "ignore_failed": false, "ignore_cancelled": false, "quorum": null,
         "cancel_stragglers": null,          # with quorum: false lets stragglers finish
         "options": {"start_to_close_timeout": 60, "local": false,
                     "retry": {"maximum_attempts": 3}}}
      ]
    }
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "FLOW_WORKFLOW_TYPE",
    "SCHEMA_VERSION",
    "FlowSpec",
    "StepSpec",
    "check_flow",
    "parse_flow",
]

SCHEMA_VERSION: Literal[1] = 1
# The name under which the generic flow workflow is registered; `temporal workflow start
# --type baton.Flow` starts a flow from the command line.
FLOW_WORKFLOW_TYPE = "baton.Flow"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetrySpec(_Frozen):
    """A step's retry policy, in seconds (Temporal's ``RetryPolicy``)."""

    initial_interval: float = Field(default=1.0, gt=0)
    backoff_coefficient: float = Field(default=2.0, ge=1)
    maximum_interval: float | None = Field(default=None, gt=0)
    maximum_attempts: int = Field(default=0, ge=0, description="0: no limit")
    non_retryable_error_types: list[str] = Field(default_factory=list)


class OptionsSpec(_Frozen):
    """A step's execution options as JSON; timeouts in seconds."""

    start_to_close_timeout: float | None = Field(default=None, gt=0)
    schedule_to_close_timeout: float | None = Field(default=None, gt=0)
    heartbeat_timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None
    task_queue: str | None = Field(default=None, min_length=1)
    local: bool | None = None


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

    @field_validator("options")
    @classmethod
    def _options_are_sound(cls, options: dict[str, Any]) -> dict[str, Any]:
        # Checked here, when the flow is read: a bad value found later, in the workflow,
        # would fail every workflow task and leave the run stuck.
        try:
            checked = OptionsSpec.model_validate(options)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(
                f"bad step options ({problems}); timeouts are seconds > 0, e.g. "
                '{"start_to_close_timeout": 60, "retry": {"maximum_attempts": 3}}'
            ) from None
        return checked.model_dump(exclude_none=True)


class FlowSpec(_Frozen):
    """A whole flow; what ``Flow.to_json`` writes and the DAG workflow runs."""

    baton_flow: Literal[1] = SCHEMA_VERSION
    workflow_name: str = Field(min_length=1)
    workflow_id: str | None = None
    debug: bool = False
    max_concurrency: int | None = Field(default=None, ge=1)
    models: dict[str, str] = Field(default_factory=dict)
    steps: tuple[StepSpec, ...] = ()

    @field_validator("steps")
    @classmethod
    def _not_empty(cls, steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
        if not steps:
            raise ValueError("a flow needs at least one step; add one with .add(name, step)")
        return steps


def name_problem(name: Any, what: str = "step name") -> str | None:
    if not isinstance(name, str) or not name:
        return f"{what} {name!r} is empty or not a string; use a name like 'parse_doc'"
    if not NAME_RE.match(name):
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
                close = [n for n in seen if n.lower() == dep.lower() or dep in n]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    f"step {s.name!r} depends on {dep!r}, which is not a step of this "
                    f"flow{hint}; add {dep!r} to the flow or remove it from deps"
                )
            if dep == s.name:
                problems.append(f"step {s.name!r} depends on itself; remove it from its deps")
        if len(set(s.deps)) != len(s.deps):
            problems.append(f"step {s.name!r} lists a dependency twice: {list(s.deps)}")
        if s.quorum is not None and s.quorum > len(s.deps):
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
    deps = {s.name: s.deps for s in spec.steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in deps.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for s in spec.steps:
        if s.name not in state:
            found = visit(s.name)
            if found:
                # Show the cycle in dependency order: a -> b means "a runs before b".
                return list(reversed(found))
    return None


def parse_flow(data: Any) -> FlowSpec:
    """Validate JSON data as a flow. Raises ``ValueError`` with every problem listed."""
    if not isinstance(data, dict):
        raise ValueError(
            f"a flow must be a JSON object, got {type(data).__name__}; see "
            "Flow.to_json() for the schema"
        )
    version = data.get("baton_flow")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"unsupported flow schema version {version!r}: this baton-temporal reads "
            f'"baton_flow": {SCHEMA_VERSION}; write the flow with this version\'s '
            "Flow.to_json(), or upgrade the workers"
        )
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as err:
        lines = [
            f"{'.'.join(str(p) for p in e['loc']) or 'flow'}: {e['msg']}" for e in err.errors()
        ]
        raise ValueError("invalid flow: " + "; ".join(lines)) from None
    problems = check_flow(spec)
    if problems:
        raise ValueError("invalid flow: " + "; ".join(problems))
    return spec
