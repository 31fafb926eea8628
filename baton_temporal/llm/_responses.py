"""The OpenAI Responses API: which models need it, its request body, its reply's text.

OpenAI serves some models only through ``POST /v1/responses`` (``o1-pro``, ``o3-pro``, the
deep-research, codex and computer-use models, ``gpt-5-pro``); a Chat Completions request
for them is refused with a 404. :func:`choose_api` picks the API of a call: the caller's
``api=`` when given (checked against the provider), else Responses for those models, else
the provider's usual API.

Example::

    choose_api("openai", "o3-pro", None)            # "responses"
    choose_api("openai", "gpt-4o", "responses")     # "responses" (asked for)
    choose_api("anthropic", "claude-x", None)       # "messages"
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from temporalio.exceptions import ApplicationError

from ._errors import INVALID_REQUEST
from ._providers import Provider

__all__ = [
    "API",
    "APIS",
    "RESPONSES_ONLY_MODELS",
    "build_responses_body",
    "check_api",
    "choose_api",
    "extract_responses",
    "is_responses_only",
]

API = Literal["messages", "chat", "responses"]
APIS: tuple[API, ...] = get_args(API)

# Model families OpenAI serves only through the Responses API (openai SDK 3.x
# `ResponsesModel` minus `ChatModel`, and genai-prices' OpenAI models). Each pattern is
# searched in the lower-cased model name; a test checks every Responses-only model the
# installed SDK names against this table.
RESPONSES_ONLY_MODELS: tuple[tuple[str, str], ...] = (
    (r"^o\d+(-mini)?-pro(-|$)", "o1-pro, o3-pro"),
    (r"deep-research", "o3-deep-research, o4-mini-deep-research"),
    (r"^computer-use", "computer-use-preview"),
    (r"codex", "codex-mini-latest, gpt-5-codex, gpt-5.1-codex-max"),
    (r"^gpt-\d+(\.\d+)?-pro(-|$)", "gpt-5-pro, gpt-5.5-pro"),
    (r"rosalind", "gpt-rosalind-research, gpt-6-rosalind"),
    (r"-cyber(-|$)", "gpt-5.6-cyber, gpt-6-cyber"),
    (r"^gpt-[\d.]+-astra-", "gpt-6.2-astra-law"),
    (r"^gpt-daybreak-", "gpt-daybreak-blue-latest"),
)
_RESPONSES_ONLY = [re.compile(pattern) for pattern, _ in RESPONSES_ONLY_MODELS]


def is_responses_only(name: str) -> bool:
    """True for a model OpenAI serves only through the Responses API.

    Example::

        is_responses_only("o3-pro-2025-06-10")   # True
        is_responses_only("o3")                  # False
    """
    lowered = name.lower()
    return any(p.search(lowered) for p in _RESPONSES_ONLY)


def check_api(model: str, api: Any) -> None:
    """Refuse a bad ``api=`` at once, before anything is sent or recorded.

    Raises a non-retryable ``ApplicationError(type="InvalidLLMRequest")`` that names the fix.
    """
    from ._providers import resolve_provider

    if api is None:
        return
    provider, name = resolve_provider(model)
    choose_api(provider, name, api)


def choose_api(provider: Provider, name: str, api: Any) -> API:
    """The API one call goes through (see the module docs)."""
    if api is not None and api not in APIS:
        raise _invalid(
            f"api={api!r} is not an API; use api='responses' or api='chat' for OpenAI "
            "models, api='messages' for Anthropic ones, or leave it out to choose by model"
        )
    if provider == "anthropic":
        if api not in (None, "messages"):
            raise _invalid(
                f"api={api!r} is an OpenAI API, but {name!r} is an Anthropic model served by "
                "the Messages API; leave api= out (or use api='messages')"
            )
        return "messages"
    if api == "messages":
        raise _invalid(
            f"api='messages' is Anthropic's API, but {name!r} goes to {provider}; use "
            "api='responses' or api='chat', or leave it out"
        )
    if api == "chat" and provider == "openai" and is_responses_only(name):
        raise _invalid(
            f"OpenAI serves {name!r} only through the Responses API; use api='responses' "
            "or leave api= out"
        )
    if api is not None:
        return api
    return "responses" if provider == "openai" and is_responses_only(name) else "chat"


def build_responses_body(
    name: str, messages: Sequence[Mapping[str, Any]], params: dict[str, Any]
) -> dict[str, Any]:
    """The Responses request body for checked chat-style ``messages``.

    System messages become ``instructions``; text blocks become ``input_text`` (user) or
    ``output_text`` (assistant) parts; ``max_tokens`` / ``max_completion_tokens`` become
    ``max_output_tokens``.
    """
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    if not turns:
        raise _invalid("the Responses API needs at least one user message besides system ones")
    if system and "instructions" in params:
        raise _invalid("give the system prompt as a system message or instructions=, not both")
    body: dict[str, Any] = {"model": name, "input": [_input_item(m) for m in turns]}
    if system:
        body["instructions"] = "\n\n".join(_plain(s) for s in system)
    params = dict(params)
    for old in ("max_tokens", "max_completion_tokens"):
        if old in params:
            limit = params.pop(old)
            params.setdefault("max_output_tokens", limit)
    _chat_shapes_to_responses(params)
    body.update(params)
    return body


def _chat_shapes_to_responses(params: dict[str, Any]) -> None:
    """Chat Completions' ``response_format``, function ``tools`` and ``tool_choice`` in
    the Responses API's shapes, in place.

    The Responses API refuses ``response_format`` (it moved to ``text.format``) and takes
    function tools flat (``{"type": "function", "name", "parameters"}``), so a call (or
    ``output_type=``) written for Chat Completions works unchanged with ``api="responses"``.
    """
    fmt = params.get("response_format")
    if isinstance(fmt, Mapping):
        params.pop("response_format")
        text = dict(params.get("text") or {})
        if "format" in text:
            raise _invalid("give the output format as response_format= or text=, not both")
        spec = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
        text["format"] = {"type": "json_schema", **spec} if isinstance(spec, Mapping) else dict(fmt)
        params["text"] = text
    tools = params.get("tools")
    if isinstance(tools, list):
        params["tools"] = [
            {"type": "function", **tool["function"]}
            if isinstance(tool, Mapping)
            and tool.get("type") == "function"
            and isinstance(tool.get("function"), Mapping)
            else tool
            for tool in tools
        ]
    choice = params.get("tool_choice")
    if (
        isinstance(choice, Mapping)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), Mapping)
    ):
        params["tool_choice"] = {"type": "function", "name": choice["function"].get("name")}


def _input_item(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, list):
        kind = "output_text" if message["role"] == "assistant" else "input_text"
        content = [
            {**block, "type": kind}
            if isinstance(block, Mapping) and block.get("type") == "text"
            else block
            for block in content
        ]
    return {"role": message["role"], "content": content}


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, Mapping))


def extract_responses(data: Mapping[str, Any]) -> tuple[str, str | None, list[Any]]:
    """(text, stop reason, output items) of a Responses reply.

    The text joins the ``output_text`` parts of its message items; the stop reason is the
    ``incomplete_details.reason`` of an incomplete reply (``"max_output_tokens"``), else
    its ``status`` (``"completed"``). Raises ``TypeError``/``KeyError`` for a wrong shape.
    """
    output = data["output"]
    if not isinstance(output, list):
        raise TypeError("output is not a list")
    texts: list[str] = []
    for item in output:
        if not isinstance(item, Mapping) or item.get("type") != "message":
            continue
        for part in item.get("content") or ():
            if isinstance(part, Mapping) and part.get("type") == "output_text":
                text = part["text"]
                if not isinstance(text, str):
                    raise TypeError(f"output_text is a {type(text).__name__}, not a string")
                texts.append(text)
    status = data.get("status")
    details = data.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    stop = reason if status == "incomplete" and isinstance(reason, str) else status
    if stop is not None and not isinstance(stop, str):
        raise TypeError(f"the status is a {type(stop).__name__}, not a string")
    return "".join(texts), stop, list(output)


def failed_reason(data: Mapping[str, Any]) -> str | None:
    """Why a Responses reply with ``status: "failed"`` failed, or None if it did not."""
    if data.get("status") != "failed":
        return None
    error = data.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('code') or 'error'}: {error.get('message') or 'no message'}"
    return "no error given"


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_REQUEST, non_retryable=True)
