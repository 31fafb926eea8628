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

To read encrypted histories in the Temporal UI or CLI, run the codec server where only
you can reach it and point them at it (UI: *Settings -> Codec Server*; CLI:
``--codec-endpoint``)::

    BATON_CODEC_KEYS=... python -m baton_temporal.codec serve --port 8888
    temporal workflow show -w brief-1 --codec-endpoint http://127.0.0.1:8888
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
    "CodecError",
    "CodecKeyError",
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
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


class CodecServer:
    """The HTTP side of :func:`serve`, usable in-process (tests start it on port 0)."""

    def __init__(
        self,
        codec: EncryptionCodec,
        *,
        origins: Sequence[str] = ("http://localhost:8233", "http://127.0.0.1:8233"),
        token: str | None = None,
    ) -> None:
        self.codec = codec
        self.origins = list(origins)
        self.token = token
        self._server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> CodecServer:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> CodecServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                response = await self.respond(method, path, headers, body)
                keep = headers.get("connection", "").lower() != "close"
                await _write_response(writer, response, keep_alive=keep)
                if not keep:
                    return
        except _BadRequest as err:
            with contextlib.suppress(ConnectionError):
                await _write_response(writer, _json_error(err.status, str(err)), keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> _Response:
        """The answer to one request (separate from the socket for testing)."""
        cors = self._cors(headers.get("origin"))
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
        if self.token is not None:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), self.token):
                return _with(_json_error(401, "missing or wrong bearer token"), cors)
        try:
            payloads = json_format.Parse(body or b"{}", Payloads()).payloads
        except (json_format.ParseError, ValueError, UnicodeDecodeError) as err:
            return _with(_json_error(400, f'body is not {{"payloads": [...]}} JSON: {err}'), cors)
        try:
            if action == "encode":
                out = await self.codec.encode(payloads)
            else:
                out = await self.codec.decode(payloads)
        except CodecError as err:
            return _with(_json_error(422, str(err)), cors)
        data = json_format.MessageToJson(Payloads(payloads=out), indent=None).encode()
        return _Response(200, data, {"content-type": "application/json", **cors})

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not origin:
            return {}
        if "*" not in self.origins and origin not in self.origins:
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": "content-type, x-namespace, authorization",
            "access-control-max-age": "600",
            "vary": "Origin",
        }


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    try:
        method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    except ValueError:
        raise _BadRequest(400, "malformed request line") from None
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        if len(headers) > 100:
            raise _BadRequest(400, "too many headers")
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(400, "send a content-length, not a chunked body")
    try:
        length = int(headers.get("content-length", "0") or 0)
    except ValueError:
        raise _BadRequest(400, "bad content-length") from None
    if length < 0 or length > MAX_REQUEST_BYTES:
        raise _BadRequest(413, f"body over {MAX_REQUEST_BYTES} bytes")
    body = await reader.readexactly(length) if length else b""
    return method.upper(), target, headers, body


async def _write_response(
    writer: asyncio.StreamWriter, response: _Response, *, keep_alive: bool
) -> None:
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
    headers = {"content-length": str(len(response.body)), **response.headers}
    headers["connection"] = "keep-alive" if keep_alive else "close"
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()


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
    origins: Sequence[str] = ("http://localhost:8233", "http://127.0.0.1:8233"),
    token: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the codec server until SIGINT/SIGTERM (or ``stop`` is set).

    It decrypts for anyone who can reach it: keep it on localhost (the default) or
    behind your own authentication, and/or require ``token`` as a bearer token.
    """
    server = CodecServer(codec or EncryptionCodec(), origins=origins, token=token)
    await server.start(host, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(
        f"baton codec server on http://{host}:{server.port} (keys {server.codec.key_ids}, "
        f"sealing with {server.codec.key_id!r}); CORS origins {server.origins}",
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
        "http://localhost:8233); '*' allows any",
    )
    srv.add_argument(
        "--token-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <value of $VAR>' on every request",
    )
    gen = sub.add_parser("keygen", help="print a new key as id:base64key")
    gen.add_argument("--id", default=None, help="the key id (default: a random one)")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            print(f"{args.id or secrets.token_hex(4)}:{generate_key()}")
            return 0
        token = None
        if args.token_env:
            token = os.environ.get(args.token_env, "").strip()
            if not token:
                print(f"codec server: ${args.token_env} is empty", file=sys.stderr)
                return 2
        origins = args.origin or ["http://localhost:8233", "http://127.0.0.1:8233"]
        asyncio.run(serve(host=args.host, port=args.port, origins=origins, token=token))
    except CodecKeyError as err:
        print(f"codec server: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"codec server: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
