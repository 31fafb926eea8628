"""Structured output: a provider reply validated into a pydantic model.

Each provider's native structured output is used where the model has one, forced tool
use otherwise:

============================ ===================================================================
provider                     request (``mode="auto"``)
============================ ===================================================================
``openai``                   ``response_format={"type": "json_schema", "json_schema": {...,
                             "strict": true}}`` (strict when the schema allows it)
``anthropic``                ``output_config={"format": {"type": "json_schema", ...}}`` on models
                             that have it (Claude 4.5 and later, Opus 4.1); otherwise one tool
                             whose ``input_schema`` is the model's schema, forced with
                             ``tool_choice={"type": "tool", "name": ...}``
``openai-compatible``        one function tool, forced with ``tool_choice``
============================ ===================================================================

A reply that does not validate is sent back to the model with the validation error, a
bounded number of times (:func:`call_structured`); each try is a separate, billed call.

Example::

    class Verdict(BaseModel):
        score: int = Field(ge=1, le=10)
        label: str

    plan = plan_for(Verdict, provider="openai", model="gpt-4o")
    plan.request_params()   # {"response_format": {"type": "json_schema", ...}}
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python
from temporalio.exceptions import ApplicationError

from ._errors import INVALID_REQUEST
from ._providers import Provider

__all__ = [
    "DEFAULT_OUTPUT_RETRIES",
    "INVALID_OUTPUT_TYPE",
    "STRUCTURED_OUTPUT_INVALID",
    "OutputMode",
    "StructuredPlan",
    "call_structured",
    "plan_for",
]

T = TypeVar("T", bound=BaseModel)
OutputMode = Literal["auto", "native", "tool"]

STRUCTURED_OUTPUT_INVALID = "StructuredOutputInvalid"
INVALID_OUTPUT_TYPE = "InvalidOutputType"
DEFAULT_OUTPUT_RETRIES = 2
MAX_OUTPUT_RETRIES = 10
# How much of a bad reply is echoed back to the model, and into the final error.
_ECHO_CHARS = 4000
_ERROR_SAMPLE_CHARS = 300
_MAX_LISTED_ERRORS = 8

# Claude models with native structured output (output_config.format): 4.5 and later,
# and Opus 4.1. Older ones (Sonnet 4, Opus 4, 3.x) answer it with a 400, so they get
# forced tool use.
_CLAUDE_VERSION = re.compile(r"^claude-([a-z]+)-(\d+)(?:-(\d))?(?:-\d{8})?$")
# Keywords Anthropic's native format refuses (it keeps the schema's shape, not its
# bounds); they move into the field's description and pydantic still enforces them.
_ANTHROPIC_UNSUPPORTED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "minProperties",
    "maxProperties",
)
# The string formats Anthropic's native format takes (others are described instead).
_ANTHROPIC_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
# Keywords OpenAI's strict mode cannot take: a schema with any is sent non-strict.
_STRICT_UNSUPPORTED = ("prefixItems", "patternProperties", "not", "if", "then", "else")


class _Unusable(Exception):
    """One reply that did not give a valid instance; ``echo`` is what the model said."""

    def __init__(self, problem: str, echo: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.echo = echo


@dataclass(frozen=True)
class StructuredPlan:
    """How one output type is asked of one provider, and how its reply is read."""

    output_type: type[BaseModel]
    provider: Provider
    mode: Literal["json_schema", "tool"]
    name: str
    schema: dict[str, Any]
    strict: bool

    def request_params(self) -> dict[str, Any]:
        """The request-body fields that ask for this output."""
        description = (self.output_type.__doc__ or "").strip()[:1000] or (
            f"Give the answer as a {self.name}."
        )
        if self.provider == "anthropic":
            if self.mode == "json_schema":
                return {"output_config": {"format": {"type": "json_schema", "schema": self.schema}}}
            return {
                "tools": [
                    {"name": self.name, "description": description, "input_schema": self.schema}
                ],
                "tool_choice": {"type": "tool", "name": self.name},
            }
        if self.mode == "json_schema":
            spec: dict[str, Any] = {"name": self.name, "schema": self.schema, "strict": self.strict}
            return {"response_format": {"type": "json_schema", "json_schema": spec}}
        function: dict[str, Any] = {
            "name": self.name,
            "description": description,
            "parameters": self.schema,
        }
        if self.provider == "openai" and self.strict:
            function["strict"] = True
        return {
            "tools": [{"type": "function", "function": function}],
            "tool_choice": {"type": "function", "function": {"name": self.name}},
        }

    def parse(self, raw_response: Mapping[str, Any], text: str, stop: str | None) -> BaseModel:
        """The validated instance in a reply, or :class:`_Unusable` saying what is wrong."""
        # Anthropic, Chat Completions, Responses (an incomplete reply) name it so.
        truncated = stop in ("max_tokens", "length", "max_output_tokens")
        hint = " (the reply was cut off at max_tokens: raise max_tokens)" if truncated else ""
        if self.mode == "tool":
            found, payload = self._tool_arguments(raw_response)
            if not found:
                raise _Unusable(
                    f"the reply was text, not a call of the tool {self.name!r}{hint}", text
                )
        else:
            refusal = _openai_refusal(raw_response) if self.provider != "anthropic" else None
            if refusal:
                raise _Unusable(f"the model refused: {refusal}", refusal)
            payload = text
        echo = payload if isinstance(payload, str) else json.dumps(payload)
        try:
            if isinstance(payload, str):
                return self.output_type.model_validate_json(payload)
            return self.output_type.model_validate(payload)
        except ValidationError as err:
            raise _Unusable(_describe(err) + hint, echo) from None

    def _tool_arguments(self, raw: Mapping[str, Any]) -> tuple[bool, Any]:
        if self.provider == "anthropic":
            for block in raw.get("content") or ():
                if (
                    isinstance(block, Mapping)
                    and block.get("type") == "tool_use"
                    and block.get("name") == self.name
                ):
                    return True, block.get("input")
            return False, None
        if isinstance(raw.get("output"), list):
            # A Responses API reply: tool calls are output items of their own.
            for item in raw["output"]:
                if (
                    isinstance(item, Mapping)
                    and item.get("type") == "function_call"
                    and item.get("name") == self.name
                ):
                    arguments = item.get("arguments")
                    return True, arguments if isinstance(arguments, str) else json.dumps(arguments)
            return False, None
        choices = raw.get("choices") or [{}]
        message = choices[0].get("message") if isinstance(choices[0], Mapping) else None
        for call in (message or {}).get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and function.get("name") == self.name:
                arguments = function.get("arguments")
                return True, arguments if isinstance(arguments, str) else json.dumps(arguments)
        return False, None


def plan_for(
    output_type: Any, *, provider: Provider, model: str, mode: OutputMode = "auto"
) -> StructuredPlan:
    """How to ask ``model`` (as sent, without a ``provider:`` prefix) for ``output_type``.

    Raises a non-retryable ``ApplicationError`` of type ``InvalidOutputType`` for a type
    that is not a pydantic model or has no JSON schema, and ``InvalidLLMRequest`` for
    ``mode="native"`` where the provider has no native structured output.
    """
    if mode not in ("auto", "native", "tool"):
        raise ApplicationError(
            f"output_mode={mode!r} is not one of 'auto', 'native', 'tool'",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    schema = _schema_of(output_type)
    name = _wire_name(output_type.__name__)
    recursive = _is_recursive(schema)
    if provider == "openai-compatible":
        if mode == "native":
            # Many compatible servers (vLLM, Ollama) take response_format json_schema.
            return StructuredPlan(output_type, provider, "json_schema", name, schema, False)
        return StructuredPlan(output_type, provider, "tool", name, schema, False)
    if provider == "openai":
        strict_schema = _strict(schema)
        strict = strict_schema is not None
        chosen: Literal["json_schema", "tool"] = "tool" if mode == "tool" else "json_schema"
        return StructuredPlan(output_type, provider, chosen, name, strict_schema or schema, strict)
    native_ok = _claude_has_native_output(model)
    if mode == "native" and (not native_ok or recursive):
        why = "a recursive schema" if native_ok else f"model {model!r}"
        raise ApplicationError(
            f"Anthropic's native structured output does not support {why}; use "
            "output_mode='auto' or 'tool' (forced tool use) instead",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    if mode != "tool" and native_ok and not recursive:
        closed = _anthropic_native(schema)
        return StructuredPlan(output_type, provider, "json_schema", name, closed, True)
    return StructuredPlan(output_type, provider, "tool", name, schema, False)


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse request fields that would fight the structured-output ones."""
    clashing = [k for k in ("response_format", "tools", "tool_choice") if k in params]
    output_config = params.get("output_config")
    if isinstance(output_config, Mapping) and "format" in output_config:
        clashing.append("output_config.format")
    if clashing:
        raise ApplicationError(
            f"call_llm(output_type=...) sets {', '.join(clashing)} itself; drop "
            f"{'it' if len(clashing) == 1 else 'them'} from the call (or call without "
            "output_type and read the reply yourself)",
            type=INVALID_REQUEST,
            non_retryable=True,
        )


async def call_structured(
    call: Callable[..., Awaitable[Any]],
    messages: Sequence[Mapping[str, Any]],
    *,
    output_type: type[T],
    provider: Provider,
    model: str,
    label: str,
    retries: int = DEFAULT_OUTPUT_RETRIES,
    mode: OutputMode = "auto",
    params: Mapping[str, Any] | None = None,
) -> T:
    """Ask for ``output_type`` with ``call(messages, **params)`` (one billed call each,
    returning an ``LLMResponse``) until a reply validates, at most ``1 + retries`` times.

    After a bad reply the conversation goes on with that reply and a user message that
    quotes the validation error, so the model can correct itself. ``label`` is the model
    as the user named it, for the error.
    """
    if (
        isinstance(retries, bool)
        or not isinstance(retries, int)
        or not 0 <= retries <= (MAX_OUTPUT_RETRIES)
    ):
        raise ApplicationError(
            f"output_retries must be a whole number from 0 to {MAX_OUTPUT_RETRIES}, got "
            f"{retries!r}",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    extra = dict(params or {})
    check_params(extra)
    plan = plan_for(output_type, provider=provider, model=model, mode=mode)
    request = plan.request_params()
    if "output_config" in request and isinstance(extra.get("output_config"), Mapping):
        # e.g. output_config={"effort": "low"} from the caller: merged, not replaced.
        request["output_config"] = {**extra.pop("output_config"), **request["output_config"]}
    conversation = [dict(m) for m in messages]
    problem = ""
    for attempt in range(retries + 1):
        reply = await call(conversation, **extra, **request)
        try:
            value = plan.parse(reply.raw_response, reply.text, reply.stop_reason)
        except _Unusable as bad:
            problem = bad.problem
            if attempt == retries:
                sample = bad.echo[:_ERROR_SAMPLE_CHARS]
                raise ApplicationError(
                    f"model {label!r} gave no valid {output_type.__name__} in {retries + 1} "
                    f"attempt(s) (1 + output_retries={retries}), each billed; last problem: "
                    f"{problem}. Last reply began: {sample!r}. Fix: raise output_retries, "
                    "loosen the model's constraints or describe its fields (Field("
                    "description=...)), raise max_tokens if replies are cut off, or use a "
                    "more capable model",
                    type=STRUCTURED_OUTPUT_INVALID,
                    non_retryable=True,
                ) from None
            conversation += _feedback(plan, bad)
            continue
        return value  # type: ignore[return-value]
    raise AssertionError("unreachable")  # pragma: no cover


def _feedback(plan: StructuredPlan, bad: _Unusable) -> list[dict[str, Any]]:
    echo = bad.echo[:_ECHO_CHARS] or "(an empty reply)"
    how = (
        f"Call the tool {plan.name!r} again with corrected arguments."
        if plan.mode == "tool"
        else f"Reply again with only the corrected JSON for {plan.name}."
    )
    return [
        {"role": "assistant", "content": echo},
        {
            "role": "user",
            "content": f"That reply does not match the required schema: {bad.problem}. {how}",
        },
    ]


def _describe(err: ValidationError) -> str:
    parts = []
    for item in err.errors(include_url=False)[:_MAX_LISTED_ERRORS]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "(the whole reply)"
        parts.append(f"{where}: {item.get('msg')}")
    more = err.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _openai_refusal(raw: Mapping[str, Any]) -> str | None:
    if isinstance(raw.get("output"), list):
        # A Responses API reply: a refusal is a content part of its message item.
        for item in raw["output"]:
            for part in (item.get("content") or ()) if isinstance(item, Mapping) else ():
                if isinstance(part, Mapping) and part.get("type") == "refusal":
                    refused = part.get("refusal")
                    return refused if isinstance(refused, str) and refused else None
        return None
    choices = raw.get("choices") or [{}]
    message = choices[0].get("message") if isinstance(choices[0], Mapping) else None
    refusal = (message or {}).get("refusal")
    return refusal if isinstance(refusal, str) and refusal else None


def _schema_of(output_type: Any) -> dict[str, Any]:
    """The JSON schema providers get for ``output_type``: a fresh copy on every call (the
    plans built from it are edited in place)."""
    if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
        _checked_schema(output_type)  # raises the error that names the fix
    return json.loads(_schema_text(output_type))


# Generating a model's JSON schema took 4.8% of a worker's CPU in `make bench-scale`
# (1,000 seed flows, 3 structured calls each): once per class is enough. A class whose
# schema fails is not cached (lru_cache keeps no exceptions) and fails again, as it must.
@functools.lru_cache(maxsize=256)
def _schema_text(output_type: type[BaseModel]) -> str:
    schema = _checked_schema(output_type)
    try:
        # A json_schema_extra callable may put dates, Decimals or UUIDs in the schema; the
        # SDK clients send those as JSON, so the cached text does the same.
        return json.dumps(schema, default=to_jsonable_python)
    except (TypeError, ValueError, PydanticSerializationError) as err:
        raise ApplicationError(
            f"output_type {output_type.__name__}'s JSON schema holds a value that is not "
            f"JSON ({err}); put only JSON values (str, numbers, lists, dicts) in its "
            "json_schema_extra",
            type=INVALID_OUTPUT_TYPE,
            non_retryable=True,
        ) from None


def _checked_schema(output_type: Any) -> dict[str, Any]:
    if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
        raise ApplicationError(
            f"output_type must be a pydantic model class (class MyModel(BaseModel): ...), "
            f"got {output_type!r}; wrap other types in a model with one field",
            type=INVALID_OUTPUT_TYPE,
            non_retryable=True,
        )
    try:
        schema = output_type.model_json_schema()
    except Exception as err:  # PydanticSchemaGenerationError, PydanticInvalidForJsonSchema
        raise ApplicationError(
            f"output_type {output_type.__name__} has no JSON schema: {err}. Use JSON types "
            "in its fields (str, int, float, bool, lists, nested models, Literal, enums)",
            type=INVALID_OUTPUT_TYPE,
            non_retryable=True,
        ) from None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        # A recursive model is a reference to its own definition; providers want an
        # object at the top, so the definition goes there (its $defs stay for the rest).
        defs = schema.get("$defs") or {}
        schema = {**defs.get(ref.rsplit("/", 1)[-1], {}), "$defs": defs}
    if schema.get("type") != "object":
        raise ApplicationError(
            f"output_type {output_type.__name__}'s schema is a {schema.get('type')!r}, not an "
            "object; providers want an object at the top: use a BaseModel with fields "
            "(not a RootModel)",
            type=INVALID_OUTPUT_TYPE,
            non_retryable=True,
        )
    return schema


def _wire_name(name: str) -> str:
    # Both providers want ^[a-zA-Z0-9_-]{1,64}$ for tool and format names.
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"


def _claude_has_native_output(model: str) -> bool:
    match = _CLAUDE_VERSION.match(model)
    if not match:
        return False
    family, major, minor = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    return (major, minor) >= (4, 5) or (family == "opus" and (major, minor) == (4, 1))


def _walk(schema: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    """Call ``visit`` on every sub-schema of ``schema``, depth first, in place.

    Only keywords that hold schemas are followed, so a field named ``default`` or
    ``type`` is never mistaken for a keyword.
    """
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        visit(node)
        for key in ("properties", "$defs", "definitions", "patternProperties"):
            children = node.get(key)
            if isinstance(children, dict):
                stack.extend(children.values())
        for key in ("items", "additionalProperties", "not", "if", "then", "else"):
            if isinstance(node.get(key), dict):
                stack.append(node[key])
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if isinstance(node.get(key), list):
                stack.extend(node[key])


def _is_recursive(schema: dict[str, Any]) -> bool:
    defs = schema.get("$defs") or {}
    refs: dict[str, set[str]] = {}
    for name, sub in defs.items():
        found: set[str] = set()

        def note(node: dict[str, Any], found: set[str] = found) -> None:
            if isinstance(node.get("$ref"), str):
                found.add(node["$ref"].rsplit("/", 1)[-1])

        _walk(sub, note)
        refs[name] = found
    # A cycle among the definitions: depth-first search with colours.
    state: dict[str, int] = {}

    def cyclic(name: str) -> bool:
        state[name] = 1
        for nxt in refs.get(name, ()):
            if state.get(nxt) == 1 or (state.get(nxt) is None and cyclic(nxt)):
                return True
        state[name] = 2
        return False

    return any(state.get(n) is None and cyclic(n) for n in sorted(refs))


def _strict(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema in OpenAI's strict form, or None when it cannot be made strict
    (free-form dicts, tuples): it is then sent with ``strict: false``."""
    out = copy.deepcopy(schema)
    problems: list[str] = []

    def visit(node: dict[str, Any]) -> None:
        node.pop("default", None)
        _one_of_as_any_of(node)
        for key in _STRICT_UNSUPPORTED:
            if key in node:
                problems.append(key)
        if "$ref" in node and len(node) > 1:
            # Strict mode takes no siblings beside $ref: keep the reference alone.
            for key in [k for k in node if k != "$ref"]:
                node.pop(key)
        if node.get("type") == "object" or "properties" in node:
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) or extra is True:
                problems.append("additionalProperties")
                return
            properties = node.get("properties") or {}
            if not properties:
                problems.append("an object without fields")
            node["additionalProperties"] = False
            node["required"] = list(properties)

    _walk(out, visit)
    return None if problems else out


def _anthropic_native(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as Anthropic's native format takes it: closed objects, no bounds."""
    out = copy.deepcopy(schema)

    def visit(node: dict[str, Any]) -> None:
        _one_of_as_any_of(node)
        moved = [f"{k}={node.pop(k)}" for k in _ANTHROPIC_UNSUPPORTED if k in node]
        # As the anthropic SDK's own transform_schema does: only minItems 0 or 1, and
        # only the string formats the format lists, stay; the rest is described.
        if node.get("minItems") not in (None, 0, 1):
            moved.append(f"minItems={node.pop('minItems')}")
        if node.get("uniqueItems") is not None:
            moved.append(f"uniqueItems={node.pop('uniqueItems')}")
        if "format" in node and node["format"] not in _ANTHROPIC_STRING_FORMATS:
            moved.append(f"format={node.pop('format')}")
        if moved:
            note = "(" + ", ".join(moved) + ")"
            node["description"] = f"{node.get('description', '')} {note}".strip()
        if node.get("type") == "object" and not isinstance(node.get("additionalProperties"), dict):
            node["additionalProperties"] = False

    _walk(out, visit)
    return out


def _one_of_as_any_of(node: dict[str, Any]) -> None:
    """A discriminated union (pydantic's ``oneOf`` + ``discriminator``) as ``anyOf``.

    Neither OpenAI's strict mode nor Anthropic's native format takes ``oneOf`` (both
    answer 400). The variants of a pydantic discriminated union differ by their ``Literal``
    tag, so at most one matches and ``anyOf`` says the same; pydantic still validates the
    reply with the discriminator.
    """
    if isinstance(node.get("oneOf"), list) and "anyOf" not in node:
        node["anyOf"] = node.pop("oneOf")
        node.pop("discriminator", None)
