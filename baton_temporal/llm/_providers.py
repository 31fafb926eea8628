"""Which provider serves a model string: a pure function, usable at flow-build time."""

from __future__ import annotations

import re
from typing import Literal, get_args

from temporalio.exceptions import ApplicationError

__all__ = ["PROVIDERS", "Provider", "UnknownModelError", "resolve_provider"]

Provider = Literal["anthropic", "openai", "openai-compatible"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)

# o1, o3-mini, o4-mini, ...: OpenAI's reasoning models are "o" followed by a digit.
_OPENAI_REASONING = re.compile(r"^o\d")


class UnknownModelError(ApplicationError, ValueError):
    """No provider is known for a model string.

    It is an ``ApplicationError`` (non-retryable, type ``"UnknownModel"``) so that an
    activity fails for good instead of retrying forever, and a ``ValueError`` so that
    flow-building code can catch it like any other bad argument.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, type="UnknownModel", non_retryable=True)

    def __reduce__(self) -> tuple[type[UnknownModelError], tuple[str]]:
        # Rebuilt from the bare message; the default would feed "UnknownModel: ..." back in.
        return type(self), (self.message,)


def resolve_provider(model: str) -> tuple[Provider, str]:
    """Return ``(provider, model_name_to_send)`` for a model string.

    Known families are inferred: ``claude-*`` is Anthropic; ``gpt-*``, ``chatgpt-*``,
    ``codex-*``, ``computer-use-*`` and ``o<digit>*`` (``o1``, ``o3-mini``, ``o4-mini``)
    are OpenAI. A
    ``provider:`` prefix overrides inference and is stripped from the name sent:
    ``anthropic:``, ``openai:`` or ``openai-compatible:`` (a local Ollama/vLLM server
    at ``BATON_OPENAI_COMPATIBLE_BASE_URL``).

    Example::

        resolve_provider("claude-sonnet-4-20250514")  # ("anthropic", "claude-sonnet-4-20250514")
        resolve_provider("o3-mini")                    # ("openai", "o3-mini")
        resolve_provider("openai-compatible:llama3.2") # ("openai-compatible", "llama3.2")

    Raises :class:`UnknownModelError` for anything else.
    """
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(
            f"model must be a non-empty string, got {model!r}; use e.g. "
            "'claude-sonnet-4-20250514', 'gpt-4o' or 'openai-compatible:llama3.2'"
        )
    prefix, sep, rest = model.partition(":")
    if sep and prefix.lower() in PROVIDERS:
        if not rest.strip():
            raise UnknownModelError(
                f"model {model!r} names the provider {prefix!r} but no model after the "
                f"colon; write e.g. '{prefix}:<model-name>'"
            )
        return prefix.lower(), rest  # type: ignore[return-value]
    lowered = model.lower()
    # Fine-tuned OpenAI models are spelled "ft:gpt-4o-mini:org::id" and are sent whole.
    if lowered.startswith("ft:") and _is_openai_name(lowered[3:]):
        return "openai", model
    if not sep:
        if lowered.startswith("claude-"):
            return "anthropic", model
        if _is_openai_name(lowered):
            return "openai", model
    raise UnknownModelError(
        f"no provider is known for model {model!r}. Prefix it with its provider: "
        f"'anthropic:{model}', 'openai:{model}', or 'openai-compatible:{model}' for an "
        "OpenAI-compatible server (Ollama, vLLM) at BATON_OPENAI_COMPATIBLE_BASE_URL"
    )


def _is_openai_name(lowered: str) -> bool:
    # codex-mini-latest and computer-use-preview: served by OpenAI's Responses API only.
    prefixes = ("gpt-", "chatgpt-", "codex-", "computer-use-")
    return lowered.startswith(prefixes) or _OPENAI_REASONING.match(lowered) is not None
