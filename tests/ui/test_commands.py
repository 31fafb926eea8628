"""``baton ui`` as a program: serves the page for the Temporal at $TEMPORAL_ADDRESS and
the ledger, stops on SIGTERM; a busy port is a one-line error naming the fix."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest

from baton_temporal.cli._demo import free_port

from ..cli._util import clean_env, run_baton
from ..cli.conftest import temporal_address  # noqa: F401  (fixture)
from ..cli.test_processes import _read_until, _running

pytestmark = pytest.mark.timeout(90)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read()


async def test_baton_ui_serves_until_sigterm(temporal_address: str, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    env = clean_env(TEMPORAL_ADDRESS=temporal_address)
    ledger = f"sqlite:///{tmp_path / 'none-yet.sqlite3'}"
    async with _running("ui", "--port", str(port), "--url", ledger, env=env, cwd=tmp_path) as ui:
        banner = await _read_until(ui["proc"], r"cost page at", timeout=40)
        assert f"cost page at http://127.0.0.1:{port}/" in banner
        status, page = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/")
        assert status == 200 and b'<script src="/static/app.js"' in page
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/api/flows")
        assert status == 200 and isinstance(json.loads(body)["flows"], list)
    assert ui["code"] == 0, ui
    # No ledger file yet: said once, and the page serves flows without costs.
    assert re.search(r"baton ui: note: no ledger at .*none-yet\.sqlite3", ui["err"]), ui
    assert "baton ui: stopped" in ui["out"]


async def test_baton_ui_on_a_busy_port(temporal_address: str, tmp_path: Path) -> None:  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(TEMPORAL_ADDRESS=temporal_address)
        ran = await run_baton("ui", "--port", str(port), env=env, cwd=tmp_path)
    assert ran.code == 2, ran
    assert f"cannot serve the cost page on 127.0.0.1:{port}" in ran.err
    assert "pick another port with --port (0 picks a free one)" in ran.err
