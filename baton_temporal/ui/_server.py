"""The cost page's HTTP server: asyncio streams, requests parsed by h11, read-only.

Routes (GET and HEAD only; anything else is 405):

=============================  ==========================================================
``/``                          the page (flows, cost chart); ``/flow?id=ID`` one flow
``/static/app.js|app.css``     its script and style (no inline script: the CSP forbids it)
``/api/flows``                 the latest flows with status, duration and cost (JSON)
``/api/flow?id=ID``            one flow: steps, edges, state, model, attempts, tokens, cost
``/api/flow/events?id=ID``     the same as Server-Sent Events, one per change
``/api/costs?since=24h``       cost by model over time, in buckets
=============================  ==========================================================

It binds 127.0.0.1 unless told otherwise and answers only requests whose ``Host`` is the
address it serves (a web page elsewhere cannot read it through DNS rebinding). Example::

    async with UIServer(client, store, port=0) as ui:
        print(ui.url)
        await asyncio.Event().wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._data import cost_series, flow_view, graph_from_event, list_flows
from ._follow import HistoryFollower

__all__ = ["UIServer"]

log = logging.getLogger("baton_temporal.ui")

# While steps are in flight: how often to re-read what changes without a history event
# (an activity's retry attempt; usage a running step records in the ledger).
IN_FLIGHT_REFRESH_S = 2.0
# A comment line on idle event streams, so proxies and browsers keep them open.
KEEPALIVE_S = 15.0
MAX_STREAMS = 64  # event streams open at once (each holds a socket)
MAX_WATCHED = 32  # flows followed at once (each holds a history long-poll)
MAX_REQUEST_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 10.0
MAX_ID_CHARS = 1000  # Temporal's own limit on a workflow id
LIST_LIMIT = 100

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/flow": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    # Only this server's own script and style; no inline script, no frames, no forms.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_SINCE = re.compile(r"([0-9]{1,6})([mhdw])")
_SINCE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SINCE = timedelta(days=366)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Watch:
    """One followed flow: its latest view, shared by every stream that shows it."""

    def __init__(self, server: UIServer, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.view: dict[str, Any] | None = None
        self.text = ""
        self.version = 0
        self.done = False
        self.subscribers = 0
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._run(server))

    async def _run(self, server: UIServer) -> None:
        try:
            await self._follow(server)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # said to the page rather than leaving it waiting
            log.exception("cost page: following %s failed", self.workflow_id)
            await self._publish({"workflow_id": self.workflow_id, "error": _short(err)})
        finally:
            async with self.changed:
                self.done = True
                self.changed.notify_all()

    async def _follow(self, server: UIServer) -> None:
        follower = HistoryFollower(server.client, self.workflow_id)
        graph = None
        async with follower:
            # The first page (the run's events so far) comes at once: read it first, so
            # that the first view already has the flow's edges.
            await follower.wait(refresh=REQUEST_TIMEOUT_S)
            while True:
                closed = follower.closed
                if graph is None and follower.first_event is not None:
                    graph = await graph_from_event(follower.first_event, server.client)
                try:
                    view = await flow_view(
                        server.client,
                        server.store,
                        self.workflow_id,
                        graph=graph,
                        summaries=follower.summaries,
                    )
                except Exception as err:
                    view = {"workflow_id": self.workflow_id, "error": _short(err)}
                    closed = True
                view["history_events"] = follower.events
                await self._publish(view)
                if closed:
                    break
                refresh = IN_FLIGHT_REFRESH_S if view.get("in_flight") else None
                await follower.wait(refresh=refresh)

    async def _publish(self, view: dict[str, Any]) -> None:
        text = json.dumps(view, separators=(",", ":"), default=str)
        if text == self.text:
            return
        async with self.changed:
            self.view, self.text = view, text
            self.version += 1
            self.changed.notify_all()


class UIServer:
    """Serves the cost page for ``client`` (Temporal) and ``store`` (the ledger, or None).

    Read-only: it lists, describes and queries workflows and reads the ledger; no route
    starts, signals, cancels or deletes anything.
    """

    def __init__(self, client: Any, store: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.client = client
        self.store = store
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._watches: dict[str, _Watch] = {}
        self._streams = 0
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> UIServer:
        self._server = await asyncio.start_server(
            self._accept, self.host, self._port, limit=MAX_REQUEST_BYTES
        )
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for watch in list(self._watches.values()):
            watch.task.cancel()
        for task in [*self._connections, *(w.task for w in self._watches.values())]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watches.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> UIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("cost page: request failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, headers = await asyncio.wait_for(
                _read_request(reader), REQUEST_TIMEOUT_S
            )
        except _HttpError as err:
            await _send(writer, err.status, _error_body(str(err)), "application/json")
            return
        head = method == "HEAD"
        try:
            if method not in ("GET", "HEAD"):
                raise _HttpError(405, "this page is read-only: only GET and HEAD")
            self._check_host(headers.get("host", ""))
            url = urlsplit(target)
            query = parse_qs(url.query, max_num_fields=10)
            if url.path == "/api/flow/events":
                await self._stream(writer, _workflow_id(query), head=head)
                return
            status, body, kind = await self._route(url.path, query)
        except _HttpError as err:
            status, body, kind = err.status, _error_body(str(err)), "application/json"
        extra = {"Allow": "GET, HEAD"} if status == 405 else {}
        await _send(writer, status, body, kind, head=head, extra=extra)

    def _check_host(self, host: str) -> None:
        """Only the names this server is reached by: defeats DNS rebinding."""
        allowed = {f"{self.host}:{self.port}", f"[{self.host}]:{self.port}"}
        if self.host in ("127.0.0.1", "::1", "localhost"):
            allowed |= {f"{h}:{self.port}" for h in ("127.0.0.1", "localhost", "[::1]")}
        if self.host in ("0.0.0.0", "::"):
            return  # bound to every address on purpose: any name may reach it
        if host.lower() not in allowed:
            raise _HttpError(403, "unexpected Host header; open the page by the URL printed")

    async def _route(self, path: str, query: Mapping[str, list[str]]) -> tuple[int, bytes, str]:
        if path in _STATIC:
            name, kind = _STATIC[path]
            data = resources.files("baton_temporal.ui").joinpath("static", name).read_bytes()
            return 200, data, kind
        if path == "/api/flows":
            flows = await self._temporal(list_flows(self.client, self.store, limit=LIST_LIMIT))
            return 200, _json({"flows": flows}), "application/json"
        if path == "/api/flow":
            workflow_id = _workflow_id(query)
            watch = self._watches.get(workflow_id)
            if watch is not None and watch.view is not None:
                return 200, watch.text.encode(), "application/json"
            view = await self._temporal(self._view_once(workflow_id))
            return 200, _json(view), "application/json"
        if path == "/api/costs":
            if self.store is None:
                raise _HttpError(503, "no ledger configured")
            since = _since(query)
            try:
                series = await cost_series(self.store, since=since)
            except Exception as err:
                raise _HttpError(503, f"ledger unavailable: {_short(err)}") from None
            return 200, _json(series), "application/json"
        raise _HttpError(404, "no such page")

    async def _view_once(self, workflow_id: str) -> dict[str, Any]:
        handle = self.client.get_workflow_handle(workflow_id)
        first = None
        with contextlib.suppress(Exception):  # no edges then; flow_view says what is wrong
            pages = handle.fetch_history_events(page_size=1)
            await pages.fetch_next_page()
            first = (pages.current_page or [None])[0]
        graph = await graph_from_event(first, self.client)
        return await flow_view(self.client, self.store, workflow_id, graph=graph)

    async def _temporal(self, call: Any) -> Any:
        from ..cli._common import CliError

        try:
            return await call
        except CliError as err:  # "no workflow ... in namespace ..."
            raise _HttpError(404, str(err)) from None
        except Exception as err:
            raise _HttpError(502, f"Temporal: {_short(err)}") from None

    # ---------------------------------------------------------------- event streams

    async def _stream(self, writer: asyncio.StreamWriter, workflow_id: str, *, head: bool) -> None:
        if self._streams >= MAX_STREAMS:
            raise _HttpError(503, f"too many open event streams (at most {MAX_STREAMS})")
        watch = self._watches.get(workflow_id)
        if watch is None:
            if len(self._watches) >= MAX_WATCHED:
                raise _HttpError(503, f"too many flows followed at once (at most {MAX_WATCHED})")
            watch = self._watches[workflow_id] = _Watch(self, workflow_id)
        watch.subscribers += 1
        self._streams += 1
        try:
            await _write(
                writer, _head(200, "text/event-stream", None, {"Cache-Control": "no-store"})
            )
            if head:
                return
            seen = 0
            while True:
                async with watch.changed:
                    if watch.version == seen and not watch.done:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(watch.changed.wait(), KEEPALIVE_S)
                    version, text, done = watch.version, watch.text, watch.done
                if version != seen:
                    seen = version
                    await _write(writer, f"event: flow\ndata: {text}\n\n".encode())
                elif done:
                    await _write(writer, b"event: end\ndata: {}\n\n")
                    return
                else:
                    await _write(writer, b": keep-alive\n\n")
        finally:
            self._streams -= 1
            watch.subscribers -= 1
            if watch.subscribers == 0 and self._watches.get(workflow_id) is watch:
                del self._watches[workflow_id]
                watch.task.cancel()


# ------------------------------------------------------------------------- helpers


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    import h11

    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as err:
            raise _HttpError(400, f"bad request: {err}") from None
        if event is h11.NEED_DATA:
            data = await reader.read(4096)
            if not data:
                raise ConnectionError("closed before a request")
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
            return event.method.decode("ascii"), event.target.decode("latin-1"), headers
        raise ConnectionError("no request")


def _workflow_id(query: Mapping[str, list[str]]) -> str:
    values = query.get("id") or []
    if len(values) != 1 or not values[0] or len(values[0]) > MAX_ID_CHARS:
        raise _HttpError(400, "give one workflow id: ?id=WORKFLOW_ID")
    return values[0]


def _since(query: Mapping[str, list[str]]) -> timedelta:
    values = query.get("since") or ["24h"]
    found = _SINCE.fullmatch(values[0])
    if len(values) != 1 or not found:
        raise _HttpError(400, "since is a number and a unit: 90m, 24h, 7d, 2w")
    since = timedelta(seconds=int(found.group(1)) * _SINCE_UNITS[found.group(2)])
    if not timedelta(minutes=1) <= since <= MAX_SINCE:
        raise _HttpError(400, "since is between 1m and 366d")
    return since


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode()


def _error_body(message: str) -> bytes:
    return _json({"error": message})


def _short(err: BaseException) -> str:
    from ..cli._common import short_error

    return short_error(err)[:500]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _head(status: int, kind: str, length: int | None, extra: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Type: {kind}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    headers = {**_SECURITY_HEADERS, "Cache-Control": "no-store", **extra, "Connection": "close"}
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    kind: str,
    *,
    head: bool = False,
    extra: Mapping[str, str] | None = None,
) -> None:
    await _write(writer, _head(status, kind, len(body), extra or {}) + (b"" if head else body))


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
