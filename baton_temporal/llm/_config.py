"""Where the providers are and which keys to use; keys never appear in a repr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["LLMConfig", "LLMConfigError", "key_problem"]

# The variable each key field is read from, to name it in errors.
KEY_ENV = {
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_compatible_api_key": "BATON_OPENAI_COMPATIBLE_API_KEY",
}
# ... and each base URL field.
BASE_URL_ENV = {
    "anthropic_base_url": "ANTHROPIC_BASE_URL",
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_compatible_base_url": "BATON_OPENAI_COMPATIBLE_BASE_URL",
}


class LLMConfigError(Exception):
    """The LLM configuration cannot work (a malformed API key). Never quotes the key.

    Deliberately not a ``ValueError``: pydantic would wrap one in a ``ValidationError``
    whose text repeats the input, key included.
    """


def key_problem(key: str) -> str | None:
    """What makes ``key`` unusable in an HTTP header, described without quoting it.

    API keys are one line of printable ASCII; a key pasted with a line break, a space,
    a NUL or a zero-width character would otherwise reach the HTTP client, whose error
    quotes the whole header.

    Example::

        key_problem("sk-abc\\ndef")   # 'contains a line break (U+000A) at character 7 of 10'
    """
    for i, char in enumerate(key):
        if "!" <= char <= "~":
            continue
        code = ord(char)
        if char in "\r\n":
            what = "a line break"
        elif char == "\0":
            what = "a NUL byte"
        elif char.isspace():
            what = "whitespace"
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            what = "a control character"
        else:
            what = "a non-ASCII character"
        return f"contains {what} (U+{code:04X}) at character {i + 1} of {len(key)}"
    return None


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

    @model_validator(mode="before")
    @classmethod
    def _keys_are_one_printable_line(cls, data: Any) -> Any:
        # Checked on the raw input, before pydantic could quote it in an error.
        if isinstance(data, dict):
            for field, env in KEY_ENV.items():
                value = data.get(field)
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                if isinstance(value, str) and value:
                    problem = key_problem(value)
                    if problem:
                        raise LLMConfigError(
                            f"the API key in {env} ({field}) {problem}; API keys are one line "
                            "of printable ASCII: copy the key again without line breaks, "
                            "spaces or invisible characters (the key is not shown here)"
                        )
        return data

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> LLMConfig:
        """Read the standard variables (from ``os.environ`` unless ``environ`` is given).

        ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``, ``OPENAI_API_KEY``,
        ``OPENAI_BASE_URL``, ``BATON_OPENAI_COMPATIBLE_BASE_URL``,
        ``BATON_OPENAI_COMPATIBLE_API_KEY``; ``BATON_LLM_TIMEOUT_S`` sets ``timeout_s``.
        Empty values count as unset; surrounding whitespace is dropped. ``overrides``
        win over the environment. Raises :class:`LLMConfigError` for a malformed key.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        values: dict[str, object] = {
            field: get(name) for field, name in (KEY_ENV | BASE_URL_ENV).items()
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
