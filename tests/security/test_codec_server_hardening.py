"""The codec server against a hostile network: no token, DNS rebinding, foreign origins,
oversized headers and bodies, idle and slow connections. Real server, real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baton_temporal.codec import (
    CodecServer,
    CodecServerError,
    EncryptionCodec,
    generate_key,
)

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64decode(generate_key())
TOKEN = "hardening-token-" + "z" * 16
SECRET = "rebinding-secret-7d1c"


def codec() -> EncryptionCodec:
    return EncryptionCodec([("k1", KEY)])


def sealed_body() -> bytes:
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payload, Payloads

    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET).encode())
    return json_format.MessageToJson(Payloads(payloads=[codec().seal(payload)])).encode()


async def exchange(port: int, raw: bytes, *, read_timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes (or the
    timeout passes: then whatever came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        chunks = []
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


def post(
    path: str = "/decode",
    body: bytes = b"",
    *,
    host: str | None = "127.0.0.1",
    extra: str = "",
    token: str | None = TOKEN,
) -> bytes:
    lines = [f"POST {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close"]
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode("latin-1") + body


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def body_of(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1] or b"{}")


def opened(reply: bytes) -> bool:
    """True when the reply holds the secret in clear (a decoded payload)."""
    if SECRET.encode() in reply:
        return True
    try:
        payloads = body_of(reply).get("payloads", [])
    except ValueError:
        return False
    return any(SECRET.encode() in base64.b64decode(p.get("data", "")) for p in payloads)


# ---- token ----------------------------------------------------------------------------


def test_a_server_without_a_token_is_refused_unless_local_use_is_explicit() -> None:
    with pytest.raises(CodecServerError, match="needs a bearer token; set BATON_CODEC_TOKEN"):
        CodecServer(codec())
    with pytest.raises(CodecServerError, match="at least 16 characters"):
        CodecServer(codec(), token="short")
    with pytest.raises(CodecServerError, match="printable ASCII") as info:
        CodecServer(codec(), token="a-long-token-with\na-line-break")
    assert "a-long-token" not in str(info.value)


async def test_no_token_is_only_for_loopback() -> None:
    with pytest.raises(CodecServerError, match="--no-token is for local use"):
        await CodecServer(codec(), insecure_no_token=True).start("0.0.0.0", 0)
    async with CodecServer(codec(), insecure_no_token=True) as server:
        reply = await exchange(server.port, post(body=sealed_body(), token=None))
        assert status_of(reply) == 200 and opened(reply)


async def test_requests_without_the_right_token_get_401_and_no_plaintext() -> None:
    async with CodecServer(codec(), token=TOKEN) as server:
        for token in (None, "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1], "é" * 20):
            reply = await exchange(server.port, post(body=sealed_body(), token=token))
            assert status_of(reply) == 401, reply
            assert not opened(reply)
            assert b"www-authenticate: Bearer" in reply
        # Another scheme carrying the right value is refused too.
        raw = post(body=sealed_body(), token=None, extra=f"Authorization: Basic {TOKEN}\r\n")
        assert status_of(await exchange(server.port, raw)) == 401
        reply = await exchange(server.port, post(body=sealed_body()))
        assert status_of(reply) == 200 and opened(reply)


def test_the_program_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BATON_CODEC_TOKEN"}
    env["BATON_CODEC_KEYS"] = f"k1:{base64.b64encode(KEY).decode()}"
    done = subprocess.run(
        [sys.executable, "-m", "baton_temporal.codec", "serve", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "no bearer token: $BATON_CODEC_TOKEN is not set" in done.stderr
    assert "--no-token" in done.stderr and "codec token" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "baton_temporal.codec", "serve", "--host", "0.0.0.0",
         "--port", "0", "--no-token"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--no-token is for local use" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "baton_temporal.codec", "serve", "--origin", "*"],
        cwd=ROOT,
        env={**env, "BATON_CODEC_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "--origin '*' would let every web page" in done.stderr


# ---- Host and Origin --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8888",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "127.0.0.2",
        "[::2]:8888",
        "",
    ],
)
async def test_dns_rebinding_hosts_are_refused(host: str) -> None:
    async with CodecServer(codec(), token=TOKEN) as server:
        reply = await exchange(server.port, post(body=sealed_body(), host=host))
        assert status_of(reply) in (400, 421), reply
        assert not opened(reply)
        if status_of(reply) == 421:
            assert "--allow-host" in body_of(reply)["error"]


async def test_local_names_and_allowed_hosts_are_answered() -> None:
    async with CodecServer(codec(), token=TOKEN) as server:
        for host in ("127.0.0.1", f"127.0.0.1:{server.port}", f"LOCALHOST:{server.port}",
                     f"[::1]:{server.port}"):  # fmt: skip
            reply = await exchange(server.port, post(body=sealed_body(), host=host))
            assert status_of(reply) == 200, (host, reply)
    async with CodecServer(codec(), token=TOKEN, hosts=["codec.internal"]) as server:
        ok = await exchange(server.port, post(body=sealed_body(), host="codec.internal:443"))
        assert status_of(ok) == 200
        # An explicit list replaces the defaults.
        refused = await exchange(server.port, post(body=sealed_body(), host="localhost"))
        assert status_of(refused) == 421


async def test_http_10_without_host_is_refused() -> None:
    async with CodecServer(codec(), token=TOKEN) as server:
        body = sealed_body()
        raw = (
            f"POST /decode HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        reply = await exchange(server.port, raw)
        assert status_of(reply) == 421 and not opened(reply)


async def test_cors_only_for_listed_origins_and_never_a_star() -> None:
    with pytest.raises(CodecServerError, match=r"--origin '\*' would let every web page"):
        CodecServer(codec(), token=TOKEN, origins=["*"])
    with pytest.raises(CodecServerError, match="is not an origin; write scheme://host"):
        CodecServer(codec(), token=TOKEN, origins=["http://localhost:8233/ui"])
    ui = "http://localhost:8233"
    async with CodecServer(codec(), token=TOKEN, origins=[ui]) as server:
        for origin in ("https://evil.example", "null", "http://localhost:8233.evil.example"):
            reply = await exchange(
                server.port, post(body=sealed_body(), extra=f"Origin: {origin}\r\n")
            )
            assert status_of(reply) == 403 and b"access-control-allow-origin" not in reply
            assert not opened(reply)
        reply = await exchange(server.port, post(body=sealed_body(), extra=f"Origin: {ui}\r\n"))
        assert status_of(reply) == 200
        assert f"access-control-allow-origin: {ui}".encode() in reply


# ---- sizes and time -----------------------------------------------------------------------


async def test_oversized_headers_get_431_not_silence() -> None:
    async with CodecServer(codec(), token=TOKEN) as server:
        # The red team's case: one 70 KB header line.
        reply = await exchange(server.port, post(extra="X-Big: " + "a" * 70_000 + "\r\n"))
        assert status_of(reply) == 431 and "headers over" in body_of(reply)["error"]
        # Many small headers adding up, and a 70 KB request target.
        many = "".join(f"X-H{i}: {'b' * 90}\r\n" for i in range(300))
        assert status_of(await exchange(server.port, post(extra=many))) == 431
        reply = await exchange(server.port, post(path="/decode?" + "q" * 70_000))
        assert status_of(reply) == 431


async def test_oversized_or_malformed_bodies_are_refused_before_they_are_read() -> None:
    async with CodecServer(codec(), token=TOKEN, max_request_bytes=4096) as server:
        # Announced as 1 GB, nothing sent: answered at once, not waited for.
        raw = post(extra="").replace(b"Content-Length: 0", b"Content-Length: 1000000000")
        reply = await exchange(server.port, raw)
        assert status_of(reply) == 413 and "over 4096 bytes" in body_of(reply)["error"]
        # Chunked, growing past the limit.
        chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
        raw = (
            f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode() + chunk * 3
        assert status_of(await exchange(server.port, raw)) == 413
        for length in ("abc", "-1", "1, 2"):
            raw = post().replace(b"Content-Length: 0", f"Content-Length: {length}".encode())
            assert status_of(await exchange(server.port, raw)) == 400, length
        # A bare-LF request and garbage instead of a request line.
        assert status_of(await exchange(server.port, b"\x00\x01\x02 hello\r\n\r\n")) == 400


async def test_idle_and_slow_connections_are_dropped() -> None:
    async with CodecServer(
        codec(), token=TOKEN, idle_timeout_s=0.3, request_timeout_s=1.0
    ) as server:
        # Connected, never sends: closed by the server (the read ends before 10 s).
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        writer.close()
        # Slowloris: a byte at a time, never finishing the headers: 408, then closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for byte in post()[:60]:
            if reader.at_eof() or len(reader._buffer):  # the server has answered
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
        reply = await asyncio.wait_for(reader.read(1000), 10)
        writer.close()
        assert status_of(reply) == 408 and "not received in time" in body_of(reply)["error"]
        # A kept-alive connection is closed once idle, after its answer.
        keep = post(body=sealed_body()).replace(b"Connection: close", b"Connection: keep-alive")
        reply = await exchange(server.port, keep)
        assert status_of(reply) == 200 and opened(reply)


async def test_connections_over_the_limit_are_turned_away() -> None:
    async with CodecServer(codec(), token=TOKEN, max_connections=2) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await asyncio.sleep(0.1)  # let the server accept them
        reply = await exchange(server.port, b"")
        assert status_of(reply) == 503 and "too many connections" in body_of(reply)["error"]
        for _, writer in held:
            writer.close()


async def test_pipelining_duplicate_headers_and_head_requests() -> None:
    """Each request of a kept-alive connection is checked on its own; ambiguous framing is
    refused; a HEAD request gets no body (and does not kill the connection handler)."""
    async with CodecServer(codec(), token=TOKEN, request_timeout_s=2) as server:
        keep = post(body=sealed_body()).replace(b"Connection: close", b"Connection: keep-alive")
        reply = await exchange(server.port, keep + post(body=sealed_body(), host="evil.example"))
        assert reply.count(b"HTTP/1.1 200 OK") == 1 and reply.count(b"HTTP/1.1 421") == 1
        for extra in ("Host: evil.example\r\n", "Content-Length: 5\r\n"):
            reply = await exchange(server.port, post(body=sealed_body(), extra=extra))
            assert status_of(reply) == 400 and not opened(reply), extra
        # Content-Length and chunked together: read as chunked, never as two requests.
        reply = await exchange(
            server.port, post(body=sealed_body(), extra="Transfer-Encoding: chunked\r\n")
        )
        assert status_of(reply) in (400, 408) and not opened(reply)
        head = f"HEAD /decode HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        reply = await exchange(server.port, head.encode(), read_timeout=3)
        assert status_of(reply) == 405 and reply.endswith(b"\r\n\r\n")


async def test_a_client_that_never_reads_its_answer_is_dropped() -> None:
    """Slow read: a large answer the client never reads fills the socket buffers; the
    server gives up after the idle timeout instead of waiting for ever."""
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payload, Payloads

    big = Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(12 * 1024 * 1024))
    body = json_format.MessageToJson(Payloads(payloads=[big])).encode()
    async with CodecServer(codec(), token=TOKEN, idle_timeout_s=0.5) as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(post("/encode", body).replace(b"Connection: close", b"Connection: keep-alive"))
        await writer.drain()
        for _ in range(200):  # the server lets go within seconds (at most 20 s here)
            if server.connections == 0:
                break
            await asyncio.sleep(0.1)
        assert server.connections == 0
        writer.close()
