"""The codec server (``python -m baton_temporal.codec serve``): Temporal's codec protocol
over HTTP, CORS for the UI, an optional bearer token, and the Temporal CLI decoding an
encrypted history through it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.cli._devserver import temporal_cli_path
from baton_temporal.codec import CodecServer, EncryptionCodec, data_converter, generate_key
from baton_temporal.testing import StandIn

from . import steps

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64decode(generate_key())
UI = "http://localhost:8233"
TOKEN = "test-token-" + "x" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def wire(text: str) -> dict[str, Any]:
    """A JSON payload as the UI and CLI send it (proto JSON: bytes as base64)."""
    return {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(json.dumps(text).encode())}


def http(
    url: str, body: Any = None, *, method: str = "POST", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status, got = response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        raw, status, got = err.read(), err.code, dict(err.headers)
    got = {k.lower(): v for k, v in got.items()}
    return status, got, json.loads(raw) if raw else None


async def call(*args: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    return await asyncio.to_thread(http, *args, **kwargs)


async def test_encode_and_decode_over_http() -> None:
    async with CodecServer(EncryptionCodec([("k1", KEY)]), token=TOKEN) as server:
        base = f"http://127.0.0.1:{server.port}"
        original = {"payloads": [wire("a prompt"), wire("its answer")]}
        status, headers, sealed = await call(
            f"{base}/encode", original, headers={"X-Namespace": "default", **AUTH}
        )
        assert status == 200 and headers["content-type"] == "application/json"
        assert len(sealed["payloads"]) == 2
        for p in sealed["payloads"]:
            assert base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted"
            assert b"prompt" not in base64.b64decode(p["data"])
        status, _, opened = await call(f"{base}/decode", sealed, headers=AUTH)
        assert status == 200 and opened == original
        # An endpoint path prefix (as configured in the UI) works too.
        status, _, again = await call(f"{base}/codec/decode", sealed, headers=AUTH)
        assert status == 200 and again == original


async def test_cors_preflight_for_the_ui_and_no_cors_for_strangers() -> None:
    async with CodecServer(EncryptionCodec([("k1", KEY)]), origins=[UI], token=TOKEN) as server:
        base = f"http://127.0.0.1:{server.port}"
        preflight = {
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        status, headers, _ = await call(f"{base}/decode", method="OPTIONS", headers=preflight)
        assert status == 204
        assert headers["access-control-allow-origin"] == UI
        assert "POST" in headers["access-control-allow-methods"]
        assert "x-namespace" in headers["access-control-allow-headers"]
        assert headers["access-control-allow-credentials"] == "true"
        status, headers, _ = await call(
            f"{base}/decode", {"payloads": []}, headers={"Origin": UI, **AUTH}
        )
        assert status == 200 and headers["access-control-allow-origin"] == UI
        status, headers, _ = await call(
            f"{base}/decode",
            method="OPTIONS",
            headers={**preflight, "Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in headers


async def test_bearer_token_and_bad_requests() -> None:
    codec = EncryptionCodec([("k1", KEY)])
    async with CodecServer(codec, token="s3cret-token-0123456789") as server:
        base = f"http://127.0.0.1:{server.port}"
        sealed = {"payloads": [json.loads(_proto_json(codec, "x"))]}
        status, _, body = await call(f"{base}/decode", sealed)
        assert status == 401 and "bearer token" in body["error"]
        status, _, _ = await call(
            f"{base}/decode", sealed, headers={"Authorization": "Bearer wrong"}
        )
        assert status == 401
        auth = {"Authorization": "Bearer s3cret-token-0123456789"}
        status, _, body = await call(f"{base}/decode", sealed, headers=auth)
        assert status == 200 and body == {"payloads": [wire("x")]}
        status, _, body = await call(f"{base}/decode", b"{not json", headers=auth)
        assert status == 400 and "payloads" in body["error"]
        status, _, body = await call(f"{base}/decode", method="GET", headers=auth)
        assert status == 405
        status, _, body = await call(f"{base}/metrics", {"payloads": []}, headers=auth)
        assert status == 404 and "codec server" in body["error"]
    other = EncryptionCodec([("k2", base64.b64decode(generate_key()))])
    async with CodecServer(other, insecure_no_token=True) as server:
        status, _, body = await call(f"http://127.0.0.1:{server.port}/decode", sealed)
        assert status == 422 and "'k1'" in body["error"]


def _proto_json(codec: EncryptionCodec, text: str) -> str:
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payload

    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())
    return json_format.MessageToJson(codec.seal(payload))


async def test_codec_server_program_and_the_temporal_cli_show_decrypted_history(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """``python -m baton_temporal.codec serve`` lets ``temporal workflow show
    --codec-endpoint`` print an encrypted run's payloads in clear."""
    keys = f"k1:{b64(KEY)}"
    secret = f"planted-secret-{uuid.uuid4().hex}"
    address = temporal_env.client.service_client.config.target_host
    client = await Client.connect(address, data_converter=data_converter(EncryptionCodec(keys)))
    flow = baton.new(workflow_name="cli-decode").add("ask", steps.echo_prompt, {"secret": secret})
    async with StandIn() as standin:
        plugin = baton.BatonPlugin(
            steps=steps.ALL, ledger=f"sqlite:///{tmp_path / 'l.sqlite3'}", llm=standin.config()
        )
        async with Worker(client, task_queue=task_queue, plugins=[plugin]):
            await flow.run(client, task_queue=task_queue)

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "baton_temporal.codec", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "BATON_CODEC_KEYS": keys, "BATON_CODEC_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), 20)
        assert f"127.0.0.1:{port}" in banner and "k1" in banner and b64(KEY) not in banner

        async def show(*extra: str, ok: bool = True) -> str:
            done = await asyncio.to_thread(
                subprocess.run,
                [temporal_cli_path(), "workflow", "show", "--address", address,
                 "--workflow-id", flow.workflow_id, "--detailed", *extra],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert (done.returncode == 0) == ok, done.stderr
            return done.stdout + done.stderr

        assert secret not in await show()
        endpoint = f"http://127.0.0.1:{port}"
        assert secret in await show("--codec-endpoint", endpoint, "--codec-auth", f"Bearer {TOKEN}")
        # Without the token the codec server refuses (401): the CLI fails, nothing in clear.
        assert secret not in await show("--codec-endpoint", endpoint, ok=False)
        server.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait, 10) == 0
    finally:
        server.kill()


def test_codec_server_refuses_to_start_without_keys() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "baton_temporal.codec", "serve", "--port", str(_free_port())],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "BATON_CODEC_KEYS"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "BATON_CODEC_KEYS is not set" in done.stderr and "keygen" in done.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
