"""The SDKs' aiohttp transport, made to hand over every byte that arrived.

Both SDKs ship an aiohttp transport (``DefaultAioHttpClient``, vendored from
httpx-aiohttp). aiohttp raises a broken connection's error *before* the bytes it had
already buffered: when the event loop reads late (a busy worker) and a stream is cut
off, its last events are dropped, e.g. Anthropic's ``message_delta`` carrying the output
token count, and with them the usage the provider reported before the cut. The
transport here wraps the SDK's own: each response body yields what was buffered, then
raises the SDK transport's (mapped) error, as httpx does.

Example::

    http_client = aiohttp_client(anthropic, limits)   # None: this SDK has no aiohttp
    client = anthropic.AsyncAnthropic(http_client=http_client)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx2 as http

log = logging.getLogger("baton_temporal.llm")

__all__ = ["aiohttp_client"]


def aiohttp_client(sdk: Any, limits: Any) -> Any | None:
    """``sdk.DefaultAioHttpClient`` over the SDK's aiohttp transport with bodies that
    keep their tail; None when the SDK or aiohttp lacks a part this relies on."""
    try:
        import aiohttp

        vendored = importlib.import_module(f"{sdk.__name__}._vendor.httpx_aiohttp.transport")
        mapper = vendored.map_aiohttp_exceptions
        client_class = sdk.DefaultAioHttpClient
    except (ImportError, AttributeError) as err:
        log.debug("no aiohttp transport in %s: %s", sdk.__name__, err)
        return None
    if not hasattr(aiohttp.StreamReader, "_read_nowait"):
        return None  # an aiohttp whose buffer this cannot reach: httpx instead

    class Client(client_class):  # type: ignore[misc, valid-type]
        # The vendored client builds its transports here (the proxies' from the
        # environment too): each is wrapped so that its bodies keep their tail.
        def _init_transport(self, *args: Any, **kwargs: Any) -> Any:
            return _KeepTail(super()._init_transport(*args, **kwargs), mapper, client_error)

        def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> Any:
            proxied = super()._init_proxy_transport(*args, **kwargs)
            return _KeepTail(proxied, mapper, client_error)

    client_error = aiohttp.ClientError
    # No limits: the SDK's own defaults.
    return Client() if limits is None else Client(limits=limits)


class _KeepTail(http.AsyncBaseTransport):
    def __init__(
        self,
        inner: Any,
        mapper: Callable[[], AbstractContextManager[None]],
        client_error: type[BaseException],
    ) -> None:
        self._inner = inner
        self._mapper = mapper
        self._client_error = client_error

    async def handle_async_request(self, request: http.Request) -> http.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except self._client_error as err:
            # What the SDK's map leaves as aiohttp's own error (a malformed reply head, a
            # header line over 8 KiB): the openai SDK wraps only httpx errors, and would
            # let it escape raw. Said as httpx says a reply it cannot read.
            raise http.RemoteProtocolError(f"{type(err).__name__}: {err}") from err
        except ValueError as err:
            # aiohttp refuses to write the request (a header with a line break): as httpx
            # refuses it, so that it fails for good and is not taken for a sent request.
            raise http.LocalProtocolError(f"{type(err).__name__}: {err}") from err
        body = getattr(response.stream, "_aiohttp_response", None)
        if body is not None:
            response.stream = _Body(body, response.stream, self._mapper, self._client_error)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Body(http.AsyncByteStream):
    """A response body read with ``readany``: on a broken connection, what aiohttp had
    buffered comes first, then the error (mapped as the SDK's transport maps it)."""

    def __init__(
        self,
        response: Any,
        inner: Any,
        mapper: Callable[[], AbstractContextManager[None]],
        client_error: type[BaseException],
    ) -> None:
        self._response = response
        self._inner = inner
        self._mapper = mapper
        self._client_error = client_error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        with self._mapper():
            while True:
                try:
                    chunk = await content.readany()
                except self._client_error:
                    tail = _buffered(content)
                    if tail:
                        yield tail
                    raise
                if not chunk:
                    return
                yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _buffered(content: Any) -> bytes:
    """What aiohttp received before the connection broke and nobody read yet."""
    if not getattr(content, "_buffer", None):
        return b""
    try:
        return bytes(content._read_nowait(-1))
    except Exception:  # an aiohttp whose internals moved: the error alone, as before
        log.debug("could not read the buffered bytes of a broken response", exc_info=True)
        return b""
