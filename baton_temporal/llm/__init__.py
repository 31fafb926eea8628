"""The LLM call layer: one ``complete()`` for Anthropic, OpenAI and OpenAI-compatible servers.

It has no Temporal dependency beyond raising ``ApplicationError``s that retry (or not)
correctly, and heartbeating when it runs inside an activity. Usage comes back
normalised as :class:`~baton_temporal.usage.LLMUsage`.

Example::

    from baton_temporal.llm import LLMClients, complete

    async with LLMClients() as clients:
        reply = await complete(
            [{"role": "user", "content": "Rate this doc 1-10"}],
            model="claude-sonnet-4-20250514",
            clients=clients,
        )
    reply.text, reply.usage.input_tokens, reply.usage.cache_read_tokens
"""

from ._clients import DEFAULT_BASE_URLS, LLMClients
from ._complete import DEFAULT_ANTHROPIC_MAX_TOKENS, LLMResponse, Message, complete
from ._config import LLMConfig, LLMConfigError
from ._errors import (
    INVALID_LLM_CONFIG,
    INVALID_REQUEST,
    MISSING_API_KEY,
    MISSING_BASE_URL,
    NON_RETRYABLE_ERROR_TYPES,
    PROVIDER_REJECTED,
    PROVIDER_RETRYABLE,
    UNKNOWN_MODEL,
    is_retryable_status,
    map_provider_error,
    redact,
    retry_delay_from_headers,
)
from ._providers import PROVIDERS, Provider, UnknownModelError, resolve_provider
from ._responses import API, APIS, RESPONSES_ONLY_MODELS, is_responses_only
from ._usage import normalize_usage, usage_from_anthropic, usage_from_openai

__all__ = [
    "API",
    "APIS",
    "DEFAULT_ANTHROPIC_MAX_TOKENS",
    "DEFAULT_BASE_URLS",
    "INVALID_LLM_CONFIG",
    "INVALID_REQUEST",
    "MISSING_API_KEY",
    "MISSING_BASE_URL",
    "NON_RETRYABLE_ERROR_TYPES",
    "PROVIDERS",
    "PROVIDER_REJECTED",
    "PROVIDER_RETRYABLE",
    "RESPONSES_ONLY_MODELS",
    "UNKNOWN_MODEL",
    "LLMClients",
    "LLMConfig",
    "LLMConfigError",
    "LLMResponse",
    "Message",
    "Provider",
    "UnknownModelError",
    "complete",
    "is_responses_only",
    "is_retryable_status",
    "map_provider_error",
    "normalize_usage",
    "redact",
    "resolve_provider",
    "retry_delay_from_headers",
    "usage_from_anthropic",
    "usage_from_openai",
]
