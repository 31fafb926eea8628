"""The stand-in's structured output: JSON-schema replies and forced tool calls.

What the stand-in reads from a request, in the providers' wire formats:

- OpenAI Chat Completions: ``response_format={"type": "json_schema", "json_schema":
  {"name", "schema", "strict"}}`` (answered with JSON text in ``message.content``), or
  ``tools`` with ``tool_choice={"type": "function", "function": {"name": ...}}`` (or
  ``"required"`` with one tool), answered with ``message.tool_calls``.
- Anthropic Messages: ``output_config={"format": {"type": "json_schema", "schema"}}``
  (JSON text), or ``tools`` with ``tool_choice={"type": "tool", "name": ...}`` (or
  ``"any"`` with one tool), answered with a ``tool_use`` block.

The answer is an instance of the schema, filled from the stand-in's ordinary answer
where the names match (its default assessment ``{"score", "label"}``, or a responder's
JSON), so structured answers agree with plain ones. Schemas the real APIs refuse
(strict without closed objects, Anthropic's format without ``additionalProperties:
false``) get the provider's 400.

Example::

    spec = structured_request("openai", body)
    if spec:
        output = instance(spec.schema, seed=json.loads(default_text))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["StructuredSpec", "instance", "schema_problem", "structured_request"]

_MAX_DEPTH = 4
# Sample strings for the JSON-schema formats pydantic emits.
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "stand-in@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


@dataclass(frozen=True)
class StructuredSpec:
    """What a request asked for: JSON text matching ``schema``, or a call of tool ``name``."""

    kind: Literal["json", "tool"]
    name: str
    schema: dict[str, Any]


def structured_request(provider: str, payload: Mapping[str, Any]) -> StructuredSpec | None:
    """The structured output a request asks for, None for an ordinary one."""
    if provider == "anthropic":
        config = payload.get("output_config")
        fmt = config.get("format") if isinstance(config, Mapping) else None
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            return StructuredSpec("json", "output", dict(fmt.get("schema") or {}))
        tools = [t for t in payload.get("tools") or () if isinstance(t, Mapping)]
        choice = payload.get("tool_choice")
        name = None
        if isinstance(choice, Mapping) and choice.get("type") == "tool":
            name = choice.get("name")
        elif isinstance(choice, Mapping) and choice.get("type") == "any" and len(tools) == 1:
            name = tools[0].get("name")
        for tool in tools:
            if name is not None and tool.get("name") == name:
                return StructuredSpec("tool", str(name), dict(tool.get("input_schema") or {}))
        return None
    fmt = payload.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        return StructuredSpec("json", str(spec.get("name")), dict(spec.get("schema") or {}))
    text = payload.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        # The Responses API: the format is flat under text.format.
        return StructuredSpec("json", str(fmt.get("name")), dict(fmt.get("schema") or {}))
    # Chat Completions nests a function tool under "function"; the Responses API is flat.
    tools = [t.get("function") or t for t in payload.get("tools") or () if isinstance(t, Mapping)]
    choice = payload.get("tool_choice")
    name = None
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or choice).get("name")
    elif choice == "required" and len(tools) == 1:
        name = tools[0].get("name")
    for tool in tools:
        if name is not None and tool.get("name") == name:
            return StructuredSpec("tool", str(name), dict(tool.get("parameters") or {}))
    return None


def schema_problem(provider: str, payload: Mapping[str, Any]) -> str | None:
    """The 400 message a real provider gives this request's schema, or None if it is fine."""
    if provider == "anthropic":
        config = payload.get("output_config")
        fmt = config.get("format") if isinstance(config, Mapping) else None
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            if _has_one_of(fmt.get("schema")):
                return "output_config.format.schema: Schema type 'oneOf' is not supported"
            for path, node in _objects(fmt.get("schema") or {}):
                if node.get("additionalProperties") is not False:
                    return (
                        f"output_config.format.schema: For 'object' type at {path}, "
                        "'additionalProperties' must be explicitly set to false"
                    )
        return None
    fmt = payload.get("response_format")
    if "input" in payload and fmt is not None:
        return (
            "Unsupported parameter: 'response_format'. In the Responses API, this parameter "
            "has moved to 'text.format'. Try again with the new parameter. See the API "
            "documentation for more information."
        )
    text = payload.get("text")
    flat = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(flat, Mapping) and flat.get("type") == "json_schema":
        fmt = {"type": "json_schema", "json_schema": flat}  # checked as Chat's below
    if not (isinstance(fmt, Mapping) and fmt.get("type") == "json_schema"):
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, Mapping) or not spec.get("name") or "schema" not in spec:
        return "Missing required parameter: 'response_format.json_schema'."
    if not spec.get("strict"):
        return None
    name = spec.get("name")
    if _has_one_of(spec.get("schema")):
        return f"Invalid schema for response_format '{name}': 'oneOf' is not permitted."
    for path, node in _objects(spec.get("schema") or {}):
        if node.get("additionalProperties") is not False:
            return (
                f"Invalid schema for response_format '{name}': In context={path}, "
                "'additionalProperties' is required to be supplied and to be false."
            )
        missing = [k for k in node.get("properties") or {} if k not in node.get("required", [])]
        if missing:
            return (
                f"Invalid schema for response_format '{name}': In context={path}, 'required' "
                f"is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
    return None


def _has_one_of(schema: Any) -> bool:
    """Whether ``oneOf`` appears anywhere in ``schema`` (both providers refuse it)."""
    if isinstance(schema, Mapping):
        return "oneOf" in schema or any(_has_one_of(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_one_of(v) for v in schema)
    return False


def _objects(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    found: list[tuple[tuple[str, ...], dict]] = []
    if not isinstance(schema, Mapping):
        return found
    if schema.get("type") == "object":
        found.append((path, dict(schema)))
    for key in ("properties", "$defs"):
        for name, sub in (schema.get(key) or {}).items():
            found += _objects(sub, (*path, key, name))
    if isinstance(schema.get("items"), Mapping):
        found += _objects(schema["items"], (*path, "items"))
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or ()):
            found += _objects(sub, (*path, key, str(i)))
    return found


def instance(schema: Mapping[str, Any], seed: Mapping[str, Any] | None = None) -> Any:
    """A value that matches ``schema``, taking ``seed``'s values for matching fields."""
    return _value(schema, dict(schema.get("$defs") or {}), seed, 0)


def _value(schema: Mapping[str, Any], defs: dict[str, Any], seed: Any, depth: int) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        return _value(
            {**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs, seed, depth
        )
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return seed if seed in schema["enum"] else schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if isinstance(o, Mapping)]
        if options:
            real = [o for o in options if o.get("type") != "null"]
            if depth >= _MAX_DEPTH and len(real) < len(options):
                return None
            return _value(real[0] if real else options[0], defs, seed, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        out: dict[str, Any] = {}
        seeds = seed if isinstance(seed, Mapping) else {}
        required = schema.get("required") or []
        for name, sub in (schema.get("properties") or {}).items():
            if depth >= _MAX_DEPTH and name not in required:
                continue
            if isinstance(sub, Mapping):
                out[name] = _value(sub, defs, seeds.get(name), depth + 1)
        return out
    if kind == "array":
        if depth >= _MAX_DEPTH:
            return []
        raw_items = schema.get("items")
        items: Mapping[str, Any] = raw_items if isinstance(raw_items, Mapping) else {}
        listed: list[Any] = seed if isinstance(seed, list) else []
        # A tuple (tuple[int, str]) lists one schema per position in prefixItems.
        prefix = [p for p in schema.get("prefixItems") or () if isinstance(p, Mapping)]
        count = max(len(prefix) or 1, int(schema.get("minItems") or 0))
        most = schema.get("maxItems")
        if isinstance(most, int) and not isinstance(most, bool):
            count = min(count, max(most, 0))  # tuple[()] and max_length=0: empty
        return [
            _value(
                prefix[i] if i < len(prefix) else items,
                defs,
                listed[i] if i < len(listed) else None,
                depth + 1,
            )
            for i in range(count)
        ]
    if kind == "integer":
        if isinstance(seed, int) and not isinstance(seed, bool) and _in_bounds(schema, seed):
            return seed
        return int(_bounded(schema, 1))
    if kind == "number":
        if (
            isinstance(seed, int | float)
            and not isinstance(seed, bool)
            and _in_bounds(schema, seed)
        ):
            return seed
        return float(_bounded(schema, 1))
    if kind == "boolean":
        return seed if isinstance(seed, bool) else True
    if kind == "null":
        return None
    if isinstance(seed, str):
        return seed
    formatted = _FORMATS.get(str(schema.get("format")))
    if formatted is not None:
        return formatted
    text = "stand-in text"
    if isinstance(schema.get("minLength"), int):
        text = text.ljust(schema["minLength"], ".")
    return text


def _in_bounds(schema: Mapping[str, Any], value: float) -> bool:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    return (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (xlow is None or value > xlow)
        and (xhigh is None or value < xhigh)
    )


def _bounded(schema: Mapping[str, Any], value: float) -> float:
    """``value`` moved inside the schema's bounds (the middle of an open interval)."""
    integer = schema.get("type") == "integer"
    low = schema.get("minimum")
    high = schema.get("maximum")
    if schema.get("exclusiveMinimum") is not None:
        low = schema["exclusiveMinimum"] + (1 if integer else 0)
    if schema.get("exclusiveMaximum") is not None:
        high = schema["exclusiveMaximum"] - (1 if integer else 0)
    if low is not None and high is not None and not integer:
        return (low + high) / 2
    if low is not None:
        value = max(value, math.ceil(low) if integer else low + 1)
    if high is not None:
        value = min(value, math.floor(high) if integer else high - 1)
    return value


def seed_from(text: str) -> Mapping[str, Any] | None:
    """The plain answer's JSON object, to fill structured answers with the same values."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, Mapping) else None
