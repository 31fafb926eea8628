"""``LLMClients``: the SDK clients one worker (or one script) shares, owned by the caller."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, Literal, overload

from temporalio.exceptions import ApplicationError

from ._config import BASE_URL_ENV, KEY_ENV, LLMConfig, key_problem
from ._errors import INVALID_LLM_CONFIG, MISSING_API_KEY, MISSING_BASE_URL
from ._providers import Provider

if TYPE_CHECKING:
    import anthropic
    import openai

__all__ = ["LLMClients", "Transport", "shared_clients"]

log = logging.getLogger("baton_temporal.llm")

# The HTTP transport under the SDK clients baton builds.
# aiohttp: the SDKs' own ``DefaultAioHttpClient``. The SDKs' default (httpx over httpcore)
# checks every idle connection of the pool with two system calls on each request and
# each response close: 15% of a busy worker's main thread in py-spy with a pool sized
# for 100 slots, none under aiohttp. ``make bench-scale ROUNDS=6`` (1,000 flows, 1 s
# models, 100 slots), against plain temporalio on httpx: worker CPU per flow 1.099x ->
# 1.052x with the PostgreSQL ledger, 0.994x -> 0.965x without; peak RSS 1.159x ->
# 1.138x and 1.098x -> 1.001x; half the connections. Flows/s moved within the noise.
Transport = Literal["aiohttp", "httpx"]
TRANSPORT_ENV = "BATON_HTTP_TRANSPORT"
_TRANSPORTS: tuple[Transport, ...] = ("aiohttp", "httpx")

# Local OpenAI-compatible servers usually ignore the key, but the openai SDK refuses to
# build a client without one and would otherwise fall back to OPENAI_API_KEY, sending the
# real OpenAI key to whatever server the base URL names.
_NO_KEY_PLACEHOLDER = "not-needed"
# Passed explicitly so that LLMConfig is the only source of truth: given None, the SDKs
# would read ANTHROPIC_BASE_URL / OPENAI_BASE_URL themselves, behind the config's back.
DEFAULT_BASE_URLS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}


class LLMClients:
    """A cache of async SDK clients keyed by (provider, base URL, key).

    Clients hold connection pools, so one instance should live as long as the worker
    and be closed with :meth:`aclose` (or used as ``async with``). Every client is built
    with ``max_retries=0``: Temporal retries the activity, and SDK-side retries would
    hide attempts (and their cost) from it. Connection pools belong to the event loop
    that first used them, so keep one instance per loop (a worker has one); used under a
    new loop once that one has closed (``asyncio.run`` twice), it builds its clients
    afresh, and while that loop runs it refuses (non-retryable ``InvalidLLMConfig``).

    ``max_connections`` / ``max_keepalive``: the connection pool of each client (one per
    provider endpoint). ``BatonPlugin`` sizes them from the worker's activity slots
    (:meth:`for_slots`); unset, the SDKs' defaults apply (1,000 / 100). ``built`` counts
    the SDK clients this object has constructed.

    ``transport``: the HTTP library under the clients. ``"aiohttp"`` (the default) is
    the SDKs' own ``DefaultAioHttpClient``, cheaper per request for a busy worker; it
    keeps up to ``max_connections`` idle connections (it has no separate keep-alive
    count). ``"httpx"`` is the SDKs' default client. ``BatonPlugin`` takes it from
    ``BATON_HTTP_TRANSPORT`` (default ``aiohttp``).

    Example::

        async with LLMClients.for_slots(200) as clients:
            reply = await complete(messages, model="gpt-4o", clients=clients)
    """

    def __init__(
        self,
        *,
        max_connections: int | None = None,
        max_keepalive: int | None = None,
        anthropic_options: dict[str, Any] | None = None,
        transport: Transport = "aiohttp",
    ) -> None:
        if transport not in _TRANSPORTS:
            raise ValueError(
                f"transport must be 'aiohttp' or 'httpx', got {transport!r} "
                f"(in the environment: {TRANSPORT_ENV}=aiohttp or {TRANSPORT_ENV}=httpx)"
            )
        self.transport: Transport = transport
        for name, value in (("max_connections", max_connections), ("max_keepalive", max_keepalive)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a whole number >= 1 (or None), got {value!r}")
        self._clients: dict[tuple[str, str, str, float], Any] = {}
        # The event loop the clients were built on: their connection pools belong to it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        # Extra keyword arguments for AsyncAnthropic (the worker's tracing sets one).
        self._anthropic_options = dict(anthropic_options or {})
        self.built = 0

    @classmethod
    def for_slots(
        cls,
        slots: int,
        *,
        anthropic_options: dict[str, Any] | None = None,
        transport: Transport = "aiohttp",
    ) -> LLMClients:
        """Clients for a worker that runs ``slots`` activities at once.

        One kept-alive connection per slot, so that a busy worker reuses its connections
        instead of opening one per call; up to twice as many open at once, for steps
        that make several calls concurrently (``asyncio.gather``). Requests beyond that
        wait for a free connection rather than opening more.
        """
        slots = max(1, int(slots))
        return cls(
            max_connections=2 * slots,
            max_keepalive=slots,
            anthropic_options=anthropic_options,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"LLMClients({len(self._clients)} open)"

    async def __aenter__(self) -> LLMClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @overload
    def get(
        self, provider: Literal["anthropic"], config: LLMConfig
    ) -> anthropic.AsyncAnthropic: ...

    @overload
    def get(
        self, provider: Literal["openai", "openai-compatible"], config: LLMConfig
    ) -> openai.AsyncOpenAI: ...

    def get(self, provider: Provider, config: LLMConfig) -> Any:
        """The client for ``provider`` under ``config``, built on first use.

        Raises a non-retryable ``ApplicationError(type="MissingAPIKey")`` naming the
        variable to set when the provider needs a key that ``config`` lacks, and
        ``"InvalidLLMConfig"`` for a key that cannot go in an HTTP header or a base URL
        no request can go to (not http(s), or holding a user name or password).
        """
        base_url, key, timeout = _endpoint(provider, config)
        problem = key_problem(key)
        if problem:
            # A config built with model_construct/model_copy skipped LLMConfig's own check.
            env = KEY_ENV.get(f"{provider.replace('-', '_')}_api_key", "the API key")
            raise ApplicationError(
                f"the API key in {env} {problem}; API keys are one line of printable ASCII: "
                "copy the key again (the key is not shown here)",
                type=INVALID_LLM_CONFIG,
                non_retryable=True,
            )
        self._check_loop()
        # The key is part of the cache key only as a digest: nothing here should print it.
        digest = hashlib.sha256(key.encode()).hexdigest()
        cache_key = (provider, base_url, digest, timeout)
        client = self._clients.get(cache_key)
        if client is None:
            _check_base_url(provider, base_url)  # once per client, not per call
            client = _build(
                provider,
                base_url,
                key,
                timeout,
                self._limits(),
                self._anthropic_options,
                self.transport,
            )
            self._clients[cache_key] = client
            self.built += 1
        return client

    def _check_loop(self) -> None:
        """Start afresh on a new event loop once the old one is closed (``asyncio.run``
        twice): its clients' connections died with it. Clients of a loop still running
        (another thread's) cannot be shared: ``ApplicationError`` naming the fix."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # built outside a loop: the first loop to call owns them
            return
        if self._loop is None or not self._clients:
            self._loop = loop
        elif loop is not self._loop:
            if not self._loop.is_closed():
                raise ApplicationError(
                    "this LLMClients is in use on another event loop (another thread's); "
                    "connection pools cannot be shared between loops: make one "
                    "LLMClients per event loop",
                    type=INVALID_LLM_CONFIG,
                    non_retryable=True,
                )
            # The old loop is gone: its clients cannot be closed any more, only dropped.
            log.debug("LLMClients used on a new event loop: building its clients afresh")
            self._clients, self._loop = {}, loop

    def _limits(self) -> tuple[int | None, int | None] | None:
        if self.max_connections is None and self.max_keepalive is None:
            return None
        return self.max_connections, self.max_keepalive

    async def aclose(self) -> None:
        """Close every client's connection pool. The object can be used again after."""
        clients, self._clients = list(self._clients.values()), {}
        if self._loop is not None and self._loop.is_closed():
            return  # their loop is gone, and their connections with it
        for client in clients:
            await client.close()


def _endpoint(provider: Provider, config: LLMConfig) -> tuple[str, str, float]:
    if provider == "anthropic":
        secret, env, base_url = (
            config.anthropic_api_key,
            "ANTHROPIC_API_KEY",
            config.anthropic_base_url,
        )
    elif provider == "openai":
        secret, env, base_url = config.openai_api_key, "OPENAI_API_KEY", config.openai_base_url
    else:
        base_url = config.openai_compatible_base_url
        if not base_url:
            raise ApplicationError(
                "model uses the 'openai-compatible:' prefix but no server is configured; "
                "set BATON_OPENAI_COMPATIBLE_BASE_URL (e.g. http://localhost:11434/v1 for "
                "Ollama) or LLMConfig(openai_compatible_base_url=...)",
                type=MISSING_BASE_URL,
                non_retryable=True,
            )
        secret = config.openai_compatible_api_key
        key = secret.get_secret_value() if secret is not None else ""
        return base_url, key or _NO_KEY_PLACEHOLDER, config.timeout_s
    key = secret.get_secret_value() if secret is not None else ""
    if not key:
        raise ApplicationError(
            f"no API key for {provider}: set the {env} environment variable "
            f"(or LLMConfig({provider}_api_key=...)) on the worker",
            type=MISSING_API_KEY,
            non_retryable=True,
        )
    return base_url or DEFAULT_BASE_URLS[provider], key, config.timeout_s


def _check_base_url(provider: Provider, base_url: str) -> None:
    """Refuse a base URL no request can go to: not http(s), or holding a user name or
    password (the HTTP client would send them in place of the API key, or, under
    aiohttp, refuse to send at all). The URL is not quoted: it may hold a password."""
    parts = urllib.parse.urlsplit(base_url)
    problem = None
    if parts.scheme.lower() not in ("http", "https"):
        problem = "does not start with http:// or https://"
    elif parts.username is not None or parts.password is not None:
        problem = (
            "holds a user name or password (user:password@host); the API key "
            "authenticates: remove them from the URL, and give other credentials as "
            "extra_headers="
        )
    if problem:
        env = BASE_URL_ENV[f"{provider.replace('-', '_')}_base_url"]
        raise ApplicationError(
            f"the base URL for {provider} ({env}) {problem}",
            type=INVALID_LLM_CONFIG,
            non_retryable=True,
        )


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LLMClients] = (
    weakref.WeakKeyDictionary()
)


def shared_clients() -> LLMClients:
    """The running event loop's own :class:`LLMClients`, for calls given no ``clients``.

    ``complete()`` and ``call_llm`` outside a ``BatonPlugin`` worker use it, so that a
    program making many calls reuses its connections instead of building an SDK client
    (and a connection pool) per call. It lives as long as the loop.
    """
    loop = asyncio.get_running_loop()
    clients = _shared.get(loop)
    if clients is None:
        clients = _shared[loop] = LLMClients()
    return clients


def _build(
    provider: Provider,
    base_url: str,
    key: str,
    timeout: float,
    limits: tuple[int | None, int | None] | None = None,
    anthropic_options: dict[str, Any] | None = None,
    transport: Transport = "aiohttp",
) -> Any:
    # Imported on first use: the SDKs take ~2 s to import, and code that only builds
    # flows (or runs in a workflow sandbox) never needs them.
    sdk: Any
    if provider == "anthropic":
        import anthropic as sdk
    else:
        import openai as sdk
    options: dict[str, Any] = {}
    sized = None
    if limits is not None:
        try:  # the HTTP library the SDKs are built on (httpx2 in this line of releases)
            import httpx2 as http
        except ImportError:  # pragma: no cover - older SDKs
            import httpx as http  # type: ignore[no-redef]

        max_connections, max_keepalive = limits
        sized = http.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive
        )
    http_client = _http_client(sdk, sized, transport)
    if http_client is not None:
        options["http_client"] = http_client
    if provider == "anthropic":
        options.update(anthropic_options or {})
    client_class = sdk.AsyncAnthropic if provider == "anthropic" else sdk.AsyncOpenAI
    return client_class(api_key=key, base_url=base_url, timeout=timeout, max_retries=0, **options)


def _http_client(sdk: Any, limits: Any, transport: Transport) -> Any:
    """The SDK's own default HTTP client class for ``transport`` (its timeouts, redirects,
    headers), its pool sized by ``limits`` (None: the SDK's default limits); None when
    the SDK's own default client will do."""
    if transport == "aiohttp":
        from ._aiohttp import aiohttp_client

        client = aiohttp_client(sdk, limits)
        if client is not None:
            return client
        # An SDK release without the aiohttp transport, or aiohttp not installed.
        log.warning(
            "the %s SDK cannot use aiohttp here; using its default HTTP client "
            "(install %s[aiohttp], or set %s=httpx to silence this)",
            sdk.__name__,
            sdk.__name__,
            TRANSPORT_ENV,
        )
    return None if limits is None else sdk.DefaultAsyncHttpxClient(limits=limits)


def transport_from_env() -> Transport:
    """The transport ``BATON_HTTP_TRANSPORT`` names (default ``aiohttp``); ValueError
    naming the allowed values for anything else."""
    value = os.environ.get(TRANSPORT_ENV, "").strip().lower() or "aiohttp"
    if value not in _TRANSPORTS:
        raise ValueError(
            f"{TRANSPORT_ENV}={os.environ[TRANSPORT_ENV]!r} is not a transport: set it to "
            "aiohttp (the default) or httpx, or unset it"
        )
    return value
