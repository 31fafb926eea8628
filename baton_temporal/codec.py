"""Optional payload encryption: prompts, results and usage never reach Temporal in clear.

Everything a flow sends through Temporal (step arguments, results, LLM usage riding in
heartbeats, failure messages) is a *payload*; :class:`EncryptionCodec` encrypts each one
with AES-256-GCM before it leaves the process and decrypts it on the way back. The
Temporal server, its database and anyone reading its history see only ciphertext, the
name of the key that sealed it, and what Temporal itself needs in clear (workflow ids,
step names, timestamps).

Keys come from ``BATON_CODEC_KEYS`` (or the constructor) as ``id:base64key`` pairs,
comma-separated, **newest last**::

    BATON_CODEC_KEYS=2025-01:q0Gd...=,2025-07:Zr8N...=

New payloads are sealed with the newest key; any listed key opens old ones, so rotating
is: append a new key everywhere, later drop the old one once no open run needs it. Make
a key with ``python -m baton_temporal.codec keygen --id 2025-07``.

The client that starts flows and every worker must use the same converter::

    from baton_temporal import codec

    client = await Client.connect("localhost:7233", data_converter=codec.data_converter())
    # or, on a client (and so on the workers built from it):
    client = await Client.connect("localhost:7233", plugins=[codec.EncryptionPlugin()])

To read encrypted histories in the Temporal UI or CLI, run the codec server and point
them at it (CLI: ``--codec-endpoint`` and ``--codec-auth``; UI: *Settings -> Codec
Server*). It requires a bearer token (``BATON_CODEC_TOKEN``) unless started with
``--no-token``, which only a loopback address accepts: a browser's Temporal UI sends no
token of ours, so for the UI on your own machine run it with ``--no-token`` (the Host and
Origin checks still keep other web pages out), or behind a proxy that adds the header::

    export BATON_CODEC_TOKEN=$(python -m baton_temporal.codec token)
    BATON_CODEC_KEYS=... python -m baton_temporal.codec serve --port 8888
    temporal workflow show -w brief-1 --codec-endpoint http://127.0.0.1:8888 \
        --codec-auth "Bearer $BATON_CODEC_TOKEN"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.plugin import SimplePlugin

__all__ = [
    "ENCODING",
    "KEYS_ENV",
    "KEY_ID_METADATA",
    "TOKEN_ENV",
    "CodecError",
    "CodecKeyError",
    "CodecServer",
    "CodecServerError",
    "EncryptionCodec",
    "EncryptionPlugin",
    "data_converter",
    "generate_key",
    "parse_keys",
    "serve",
]

log = logging.getLogger("baton_temporal.codec")

KEYS_ENV = "BATON_CODEC_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = (16, 24, 32)  # AES-128/192/256; generate_key makes 32
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # a codec request holds payloads of <= 2 MB each
_KEYGEN_HINT = "make one with `python -m baton_temporal.codec keygen --id <key-id>`"


class CodecError(Exception):
    """A payload cannot be decrypted (unknown key, tampered or corrupt data)."""


class CodecKeyError(CodecError, ValueError):
    """The key configuration is invalid; raised when the codec is built."""


def generate_key() -> str:
    """A fresh random AES-256 key, base64-encoded, for ``BATON_CODEC_KEYS``."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """Parse ``id1:base64key,id2:base64key`` (newest last) into ``[(id, key), ...]``."""
    keys: list[tuple[str, bytes]] = []
    for n, item in enumerate(p.strip() for p in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise CodecKeyError(
                f"{KEYS_ENV} entry {n + 1} is not 'id:base64key' (got {_shown(item)}); "
                f"write e.g. 2025-07:<base64 key>; {_KEYGEN_HINT}"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CodecKeyError(
                f"{KEYS_ENV}: the key of {key_id!r} is not valid base64; {_KEYGEN_HINT}"
            ) from None
        keys.append((key_id, key))
    return keys


def _shown(item: str) -> str:
    # Never echo what might be key material.
    return f"{len(item)} characters without ':'" if ":" not in item else "an empty id"


class EncryptionCodec(PayloadCodec):
    """AES-GCM payload encryption with named keys; the newest key seals, any key opens.

    ``keys``: ``[(id, key_bytes), ...]`` or ``{id: key_bytes}`` in age order (newest
    last), or an ``id:base64key,...`` string; default :data:`KEYS_ENV` from the
    environment. Each payload is sealed as ``nonce || AES-GCM(serialized payload)`` with
    the key id as associated data, and carries the key id in its metadata.
    Payloads that are not encrypted are passed through on decode, so histories written
    before encryption was switched on stay readable.

    Example::

        codec = EncryptionCodec([("2025-07", key)])
        sealed = await codec.encode([payload])
        assert await codec.decode(sealed) == [payload]
    """

    def __init__(
        self,
        keys: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if keys is None:
            env = os.environ if environ is None else environ
            spec = env.get(KEYS_ENV, "").strip()
            if not spec:
                raise CodecKeyError(
                    f"payload encryption is on but {KEYS_ENV} is not set; set it to "
                    f"id:base64key pairs, newest last; {_KEYGEN_HINT}"
                )
            keys = spec
        pairs = parse_keys(keys) if isinstance(keys, str) else list(_pairs(keys))
        if not pairs:
            raise CodecKeyError(f"payload encryption needs at least one key; {_KEYGEN_HINT}")
        self._keys: dict[str, AESGCM] = {}
        for key_id, key in pairs:
            if not isinstance(key_id, str) or not key_id or len(key_id.encode()) > 200:
                raise CodecKeyError(f"a key id must be a non-empty short string, got {key_id!r}")
            if key_id in self._keys:
                raise CodecKeyError(f"key id {key_id!r} is listed twice; give each key its own id")
            if not isinstance(key, bytes | bytearray) or len(key) not in KEY_BYTES:
                size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
                raise CodecKeyError(
                    f"key {key_id!r} is {size} bytes; AES needs 16, 24 or 32 (32 recommended); "
                    f"{_KEYGEN_HINT}"
                )
            self._keys[key_id] = AESGCM(bytes(key))
        self._current = pairs[-1][0]

    @property
    def key_id(self) -> str:
        """The id of the key new payloads are sealed with (the newest)."""
        return self._current

    @property
    def key_ids(self) -> list[str]:
        """Every key id this codec can open, oldest first."""
        return list(self._keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"EncryptionCodec(keys={self.key_ids!r}, sealing with {self._current!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        """One payload, encrypted with the newest key."""
        key_id = self._current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[key_id].encrypt(nonce, payload.SerializeToString(), _associated(key_id))
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        """One payload, decrypted (returned as it is when it is not encrypted)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        key_id = raw_id.decode(errors="replace") if raw_id is not None else None
        cipher = self._keys.get(key_id) if key_id is not None else None
        if cipher is None:
            raise CodecError(
                f"payload was encrypted with key {key_id!r}, which is not among this "
                f"process's keys {self.key_ids}; add it to {KEYS_ENV} (keys are never "
                "dropped while runs that used them are open)"
            )
        assert key_id is not None
        if len(payload.data) < NONCE_BYTES + 16:
            raise CodecError(f"encrypted payload (key {key_id!r}) is truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _associated(key_id))
        except InvalidTag:
            raise CodecError(
                f"encrypted payload (key {key_id!r}) failed authentication: it was altered, "
                "or sealed with a different key under the same id"
            ) from None
        return Payload.FromString(plain)


def _pairs(keys: Sequence[tuple[str, bytes]] | Mapping[str, bytes]) -> Iterable[tuple[str, bytes]]:
    if isinstance(keys, Mapping):
        return list(keys.items())
    return [tuple(k) for k in keys]  # type: ignore[misc]


def _associated(key_id: str) -> bytes:
    # Binds the ciphertext to its key id and format: swapping metadata fails to decrypt.
    return b"baton-temporal/v1\0" + key_id.encode()


def data_converter(
    codec: PayloadCodec | None = None,
    *,
    base: DataConverter | None = None,
    encode_failures: bool = True,
) -> DataConverter:
    """A ``DataConverter`` that encrypts every payload (default codec: from the env).

    ``encode_failures`` (default on) also encrypts failure messages and stack traces,
    which Temporal otherwise stores in clear (an error can quote a prompt).

    Example::

        client = await Client.connect("localhost:7233", data_converter=data_converter())
    """
    converter = base or DataConverter.default
    changes: dict[str, Any] = {"payload_codec": codec or EncryptionCodec()}
    if encode_failures:
        changes["failure_converter_class"] = DefaultFailureConverterWithEncodedAttributes
    return dataclasses.replace(converter, **changes)


class EncryptionPlugin(SimplePlugin):
    """Client (and worker) plugin that switches the data converter to encryption.

    Example::

        client = await Client.connect("localhost:7233", plugins=[EncryptionPlugin()])
    """

    def __init__(self, codec: PayloadCodec | None = None, *, encode_failures: bool = True) -> None:
        codec = codec or EncryptionCodec()

        def convert(existing: DataConverter | None) -> DataConverter:
            return data_converter(codec, base=existing, encode_failures=encode_failures)

        super().__init__("baton_temporal.EncryptionPlugin", data_converter=convert)


# ---- the codec server ---------------------------------------------------------------------
#
# Temporal's codec server protocol: POST <endpoint>/encode and <endpoint>/decode with the
# JSON form of temporal.api.common.v1.Payloads ({"payloads": [{"metadata": {...},
# "data": "<base64>"}]}), answered in the same form. The UI calls it from the browser,
# so it answers CORS preflights for the origins it is told to trust.
#
# It hands plaintext to whoever it answers, so by default it: requires a bearer token;
# answers only requests whose Host names this machine (a web page cannot use DNS
# rebinding to reach it as "evil.example"); answers CORS only for listed origins, never
# "*"; bounds header and body sizes; and drops idle or slow connections. HTTP is parsed
# by h11 (already installed with httpx), not by hand.

TOKEN_ENV = "BATON_CODEC_TOKEN"
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_HEADER_BYTES = 16 * 1024
IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request for this long is closed
REQUEST_TIMEOUT_S = 60.0  # a request must arrive whole within this (slow senders)
MAX_CONNECTIONS = 64
MIN_TOKEN_CHARS = 16
_NO_TOKEN_HINT = (
    f"set {TOKEN_ENV} to a long random value (make one with `python -m "
    "baton_temporal.codec token`) and send 'Authorization: Bearer <token>' (Temporal "
    "CLI: --codec-auth 'Bearer <token>'); for a server only you can reach on this "
    "machine, pass --no-token"
)


class CodecServerError(ValueError):
    """The codec server's settings are unsafe or invalid; raised before it listens."""


@dataclasses.dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    421: "Misdirected Request",
    422: "Unprocessable Entity",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class CodecServer:
    """The HTTP side of :func:`serve`, usable in-process (tests start it on port 0).

    ``token``: the bearer token every request must carry; ``insecure_no_token=True``
    instead, to run without one (only when listening on loopback). ``origins``: browser
    origins answered with CORS (``"*"`` is refused). ``hosts``: host names a request's
    ``Host`` header may carry (default: ``localhost``, ``127.0.0.1``, ``::1`` and the
    address it listens on).

    Example::

        async with CodecServer(EncryptionCodec(), token=os.environ["BATON_CODEC_TOKEN"]):
            ...
    """

    def __init__(
        self,
        codec: EncryptionCodec,
        *,
        token: str | None = None,
        insecure_no_token: bool = False,
        origins: Sequence[str] = DEFAULT_ORIGINS,
        hosts: Sequence[str] | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.codec = codec
        if token is None and not insecure_no_token:
            raise CodecServerError(
                "the codec server decrypts for whoever calls it, so it needs a bearer token; "
                + _NO_TOKEN_HINT
            )
        if token is not None:
            _check_token(token)
        self.token = token
        self.origins = [_check_origin(o) for o in origins]
        self.hosts = {_host_name(h) for h in (hosts or LOOPBACK_HOSTS)}
        self._default_hosts = hosts is None
        self.max_request_bytes = max_request_bytes
        self.max_header_bytes = max_header_bytes
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> CodecServer:
        if self.token is None and _host_name(host) not in LOOPBACK_HOSTS:
            raise CodecServerError(
                f"--no-token is for local use, but the server would listen on {host}, "
                f"where others can reach it; {_NO_TOKEN_HINT.split('; for')[0]}"
            )
        if self._default_hosts and host not in ("0.0.0.0", "::", ""):
            self.hosts.add(_host_name(host))
        self._server = await asyncio.start_server(self._handle, host, port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Open connections end now, not when their idle timeout would.
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def __aenter__(self) -> CodecServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self.connections > self.max_connections:
                await _write_raw(writer, _json_error(503, "too many connections; retry later"))
                return
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_header_bytes)
            while True:
                outcome = await self._one_request(conn, reader, writer)
                if not outcome or conn.our_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the peer went away, or the server is closing
        except h11.ProtocolError:
            return  # an exchange h11 cannot frame: the connection just ends
        finally:
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(
        self, conn: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        import h11

        loop = asyncio.get_running_loop()
        deadline: float | None = None  # set once the request's first bytes arrive
        request: Any = None
        body = bytearray()
        too_large = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as err:
                status = err.error_status_hint if err.error_status_hint in _REASONS else 400
                if status == 431:
                    message = f"request headers over {self.max_header_bytes} bytes"
                else:
                    message = f"malformed HTTP request: {err}"
                await _write_raw(writer, _json_error(status, message))
                return False
            if event is h11.NEED_DATA:
                now = loop.time()
                if deadline is None and conn.their_state is not h11.IDLE:
                    deadline = now + self.request_timeout_s
                wait = (
                    self.idle_timeout_s
                    if deadline is None
                    else min(self.idle_timeout_s, deadline - now)
                )
                try:
                    data = await asyncio.wait_for(reader.read(65536), max(wait, 0.0))
                except TimeoutError:
                    if deadline is not None:  # a request had begun: say why it ends
                        await _write_raw(writer, _json_error(408, "request not received in time"))
                    return False
                if deadline is None and data:
                    deadline = loop.time() + self.request_timeout_s
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return False
            if isinstance(event, h11.Request):
                request = event
                # h11 bounds only a header block still incomplete; one that arrived in
                # a single read is measured here.
                size = (
                    len(event.method)
                    + len(event.target)
                    + sum(len(k) + len(v) + 4 for k, v in event.headers)
                )
                if size > self.max_header_bytes:
                    message = f"request headers over {self.max_header_bytes} bytes"
                    await _write_raw(writer, _json_error(431, message))
                    return False
                length = _header(event.headers, b"content-length")
                if length is not None and length.isdigit() and int(length) > self.max_request_bytes:
                    too_large = True
                    break
                if conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
                continue
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_request_bytes:
                    too_large = True
                    break
                continue
            if isinstance(event, h11.EndOfMessage):
                break
            return False  # anything else (h11.PAUSED...) ends the connection, never spins
        assert request is not None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if too_large:
            response = _json_error(413, f"request body over {self.max_request_bytes} bytes")
            response.headers["connection"] = "close"
        else:
            response = await self.respond(
                request.method.decode("latin-1").upper(),
                request.target.decode("latin-1"),
                headers,
                bytes(body),
            )
        head = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        head.append((b"content-length", str(len(response.body)).encode()))
        reason = _REASONS.get(response.status, "").encode()
        out = conn.send(h11.Response(status_code=response.status, headers=head, reason=reason))
        if response.body and request.method != b"HEAD":  # a HEAD answer has no body
            out += conn.send(h11.Data(data=response.body))
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        try:
            # A client that never reads its answer must not hold the connection for ever.
            await asyncio.wait_for(writer.drain(), self.idle_timeout_s)
        except TimeoutError:
            return False
        return not too_large

    async def respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> _Response:
        """The answer to one request (separate from the socket for testing)."""
        host = headers.get("host")
        if not host or _host_name(host) not in self.hosts:
            # DNS rebinding: a page at evil.example whose name now points here sends
            # "Host: evil.example"; only names of this machine are answered.
            return _json_error(
                421,
                f"this codec server does not answer for host {host!r}; call it as one of "
                f"{sorted(self.hosts)}, or start it with --allow-host NAME",
            )
        origin = headers.get("origin")
        if origin and origin not in self.origins:
            return _json_error(
                403,
                f"origin {origin!r} is not allowed; start the server with --origin {origin} "
                "if that is your Temporal UI",
            )
        cors = self._cors(origin)
        if method == "OPTIONS":
            return _Response(204, headers=cors)
        route = path.split("?", 1)[0].rstrip("/")
        action = route.rsplit("/", 1)[-1]
        if action not in ("encode", "decode"):
            return _with(
                _json_error(404, "not found: POST /encode or /decode (a Temporal codec server)"),
                cors,
            )
        if method != "POST":
            return _with(_json_error(405, f"{action} takes POST"), cors)
        if self.token is not None and not self._authorized(headers.get("authorization", "")):
            response = _json_error(
                401, "missing or wrong bearer token; send 'Authorization: Bearer <token>'"
            )
            response.headers["www-authenticate"] = 'Bearer realm="baton codec"'
            return _with(response, cors)
        try:
            payloads = json_format.Parse(body or b"{}", Payloads()).payloads
        except (json_format.ParseError, ValueError, UnicodeDecodeError, RecursionError) as err:
            return _with(_json_error(400, f'body is not {{"payloads": [...]}} JSON: {err}'), cors)
        try:
            if action == "encode":
                out = await self.codec.encode(payloads)
            else:
                out = await self.codec.decode(payloads)
        except (CodecError, ValueError) as err:
            return _with(_json_error(422, str(err)), cors)
        data = json_format.MessageToJson(Payloads(payloads=out), indent=None).encode()
        return _Response(200, data, {"content-type": "application/json", **cors})

    def _authorized(self, given: str) -> bool:
        assert self.token is not None
        scheme, _, value = given.strip().partition(" ")
        # Bytes: compare_digest refuses non-ASCII str, and a header may hold any byte.
        expected = self.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("latin-1", "replace"), expected
        )

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not origin or origin not in self.origins:
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": "content-type, x-namespace, authorization",
            "access-control-max-age": "600",
            "vary": "Origin",
        }


def _check_token(token: str) -> None:
    # Never echo the token.
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
        raise CodecServerError(
            f"the codec server's bearer token must be at least {MIN_TOKEN_CHARS} characters "
            f"(a guessable token is no protection); {_NO_TOKEN_HINT.split('; for')[0]}"
        )
    if any(not ("!" <= c <= "~") for c in token):
        raise CodecServerError(
            "the codec server's bearer token must be printable ASCII without spaces or line "
            "breaks (it travels in an HTTP header); the token is not shown here"
        )


def _check_origin(origin: str) -> str:
    if origin.strip() == "*":
        raise CodecServerError(
            "--origin '*' would let every web page read decrypted payloads with your "
            "browser's credentials; list your Temporal UI's origin instead, e.g. "
            "--origin http://localhost:8233"
        )
    scheme, sep, rest = origin.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise CodecServerError(
            f"--origin {origin!r} is not an origin; write scheme://host[:port] without a "
            "path, e.g. http://localhost:8233"
        )
    return origin


def _host_name(host: str) -> str:
    """``Host`` header (or listen address) -> lower-case host name without the port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name
    return host


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _write_raw(writer: asyncio.StreamWriter, response: _Response) -> None:
    """An error answer outside an HTTP exchange h11 can still frame (the request was
    unreadable), always closing the connection."""
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
    headers = {**response.headers, "content-length": str(len(response.body))}
    headers["connection"] = "close"
    head += [f"{k}: {v}" for k, v in headers.items()]
    with contextlib.suppress(ConnectionError, TimeoutError):
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT_S)


def _json_error(status: int, message: str) -> _Response:
    body = json.dumps({"error": message}).encode()
    return _Response(status, body, {"content-type": "application/json"})


def _with(response: _Response, headers: Mapping[str, str]) -> _Response:
    response.headers.update(headers)
    return response


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8888,
    codec: EncryptionCodec | None = None,
    origins: Sequence[str] = DEFAULT_ORIGINS,
    token: str | None = None,
    insecure_no_token: bool = False,
    hosts: Sequence[str] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the codec server until SIGINT/SIGTERM (or ``stop`` is set).

    It decrypts for whoever it answers: it requires ``token`` as a bearer token unless
    ``insecure_no_token`` (loopback only), and answers only ``hosts`` and ``origins``.
    """
    server = CodecServer(
        codec or EncryptionCodec(),
        origins=origins,
        token=token,
        insecure_no_token=insecure_no_token,
        hosts=hosts,
    )
    await server.start(host, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    auth = "bearer token required" if token is not None else "NO TOKEN (local use only)"
    print(
        f"baton codec server on http://{host}:{server.port} (keys {server.codec.key_ids}, "
        f"sealing with {server.codec.key_id!r}); {auth}; hosts {sorted(server.hosts)}; "
        f"CORS origins {server.origins}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m baton_temporal.codec",
        description="Payload encryption for baton-temporal: codec server and key generator.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="run a Temporal codec server (for the UI and CLI)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8888)
    srv.add_argument(
        "--origin",
        action="append",
        help="a browser origin allowed to call it (repeat; default the local Temporal UI, "
        "http://localhost:8233 and http://127.0.0.1:8233); '*' is refused",
    )
    srv.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="a host name requests may be addressed to (repeat; default localhost, "
        "127.0.0.1, ::1 and --host)",
    )
    srv.add_argument(
        "--token-env",
        metavar="VAR",
        default=TOKEN_ENV,
        help=f"the variable holding the bearer token every request must carry "
        f"(default {TOKEN_ENV})",
    )
    srv.add_argument(
        "--no-token",
        action="store_true",
        help="run without a token: only on a loopback --host, for a machine only you use",
    )
    gen = sub.add_parser("keygen", help="print a new key as id:base64key")
    gen.add_argument("--id", default=None, help="the key id (default: a random one)")
    sub.add_parser("token", help=f"print a new random bearer token for {TOKEN_ENV}")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            print(f"{args.id or secrets.token_hex(4)}:{generate_key()}")
            return 0
        if args.command == "token":
            print(secrets.token_urlsafe(32))
            return 0
        codec = EncryptionCodec()  # the keys first: without them nothing else matters
        token = os.environ.get(args.token_env, "").strip() or None
        if token is None and not args.no_token:
            print(
                f"codec server: no bearer token: ${args.token_env} is not set. {_NO_TOKEN_HINT}",
                file=sys.stderr,
            )
            return 2
        if token is not None and args.no_token:
            print(
                f"codec server: --no-token given but ${args.token_env} is set; drop one",
                file=sys.stderr,
            )
            return 2
        origins = args.origin or list(DEFAULT_ORIGINS)
        asyncio.run(
            serve(
                host=args.host,
                port=args.port,
                codec=codec,
                origins=origins,
                token=token,
                insecure_no_token=args.no_token,
                hosts=args.allow_host,
            )
        )
    except (CodecKeyError, CodecServerError) as err:
        print(f"codec server: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"codec server: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
