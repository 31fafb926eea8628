"""Where the providers are and which keys to use; keys never appear in a repr."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["LLMConfig"]


class LLMConfig(BaseModel):
    """Endpoints, keys and timeout of the LLM call layer.

    Keys are ``SecretStr``: ``repr(config)``, ``str(config)`` and ``model_dump()`` show
    ``'**********'``, never the key. ``None`` for a base URL means the provider's own
    default endpoint.

    Example::

        config = LLMConfig.from_env()                    # ANTHROPIC_API_KEY, OPENAI_API_KEY, ...
        config = LLMConfig(openai_api_key="sk-...", timeout_s=30)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_compatible_base_url: str | None = None
    openai_compatible_api_key: SecretStr | None = None
    # Per HTTP request. The activity's start-to-close timeout bounds the whole attempt;
    # this one makes a hung connection fail (and retry) well before that.
    timeout_s: float = Field(default=300.0, gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> LLMConfig:
        """Read the standard variables (from ``os.environ`` unless ``environ`` is given).

        ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``, ``OPENAI_API_KEY``,
        ``OPENAI_BASE_URL``, ``BATON_OPENAI_COMPATIBLE_BASE_URL``,
        ``BATON_OPENAI_COMPATIBLE_API_KEY``; ``BATON_LLM_TIMEOUT_S`` sets ``timeout_s``.
        Empty values count as unset. ``overrides`` win over the environment.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        values: dict[str, object] = {
            "anthropic_api_key": get("ANTHROPIC_API_KEY"),
            "anthropic_base_url": get("ANTHROPIC_BASE_URL"),
            "openai_api_key": get("OPENAI_API_KEY"),
            "openai_base_url": get("OPENAI_BASE_URL"),
            "openai_compatible_base_url": get("BATON_OPENAI_COMPATIBLE_BASE_URL"),
            "openai_compatible_api_key": get("BATON_OPENAI_COMPATIBLE_API_KEY"),
        }
        timeout = get("BATON_LLM_TIMEOUT_S")
        if timeout is not None:
            try:
                values["timeout_s"] = float(timeout)
            except ValueError:
                raise ValueError(
                    f"BATON_LLM_TIMEOUT_S={timeout!r} is not a number of seconds; set it to "
                    "e.g. 300, or unset it for the default"
                ) from None
        values.update(overrides)
        return cls.model_validate(values)

    def secrets(self) -> list[str]:
        """The key values set, for scrubbing them out of error messages and logs."""
        keys = (self.anthropic_api_key, self.openai_api_key, self.openai_compatible_api_key)
        return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]
