"""``baton dev`` and ``baton worker`` as long-running programs: serve flows, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

from baton_temporal.cli._demo import free_port
from baton_temporal.testing import StandIn
from workers.examples import seed

from ._util import BATON, clean_env, run_baton


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


@contextlib.asynccontextmanager
async def _running(*args: str, env: dict[str, str], cwd: Path) -> AsyncIterator[dict]:
    """Run ``baton *args`` in the background; on exit SIGTERM it and collect its output."""
    proc = await asyncio.create_subprocess_exec(
        BATON,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    outcome: dict = {"proc": proc}
    try:
        yield outcome
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        outcome.update(code=proc.returncode, out=out.decode(), err=err.decode())


async def _read_until(proc: asyncio.subprocess.Process, pattern: str, timeout: float = 20) -> str:
    """Read the program's stdout until a line matches; return what was read."""
    assert proc.stdout is not None
    seen = []

    async def read() -> str:
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError("the program ended early:\n" + "".join(seen))
            seen.append(line)
            if re.search(pattern, line):
                return "".join(seen)

    return await asyncio.wait_for(read(), timeout)


async def test_dev_serves_flows_until_sigterm(tmp_path: Path) -> None:
    port, ui_port, page_port = free_port(), free_port(), free_port()
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(seed.quality_flow("One paragraph.\n\nAnother one.").to_json())
    env = clean_env()
    dev_args = ("dev", "--offline", "--port", str(port), "--ui-port", str(ui_port))
    dev_args += ("--page-port", str(page_port))
    async with _running(*dev_args, env=env, cwd=tmp_path) as dev:
        banner = await _read_until(dev["proc"], r"^Start a flow")
        assert f"export TEMPORAL_ADDRESS=127.0.0.1:{port}" in banner
        assert f"http://127.0.0.1:{ui_port}" in banner
        assert re.search(r"Task queue\s+baton$", banner, re.M)
        assert str(tmp_path / ".baton" / "ledger.sqlite3") in banner
        assert "OFFLINE" in banner
        assert re.search(rf"Cost page\s+http://127.0.0.1:{page_port}/$", banner, re.M)

        user = clean_env(TEMPORAL_ADDRESS=f"127.0.0.1:{port}")
        ran = await run_baton("start", str(flow_file), "--wait", env=user, cwd=tmp_path)
        assert ran.code == 0, ran
        assert len(re.findall(r"^\w+\s+completed\s", ran.out, re.M)) == 6, ran.out
        # The worker of `baton dev` wrote the ledger that `baton stats` reads by default.
        workflow_id = re.search(r"as workflow (\S+)", ran.out).group(1)  # type: ignore[union-attr]
        ran = await run_baton("stats", "totals", workflow_id, env=env, cwd=tmp_path)
        assert ran.code == 0 and re.search(r"^calls\s+5$", ran.out, re.M), ran
        # ...and its cost page lists the flow with what it cost.
        flows = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{page_port}/api/flows")
        (listed,) = [f for f in flows["flows"] if f["workflow_id"] == workflow_id]
        assert listed["status"] == "COMPLETED" and listed["calls"] == 5
        assert listed["cost_usd"] is not None and float(listed["cost_usd"]) > 0
    assert dev["code"] == 0, dev
    assert "baton dev: stopped" in dev["out"]


async def test_worker_program(temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(seed.analysis_flow("Some text.\n\nMore text.").to_json())
    async with StandIn() as standin:
        env = clean_env(TEMPORAL_ADDRESS=temporal_address, **standin.env())
        worker_args = (
            "worker",
            "--steps",
            "baton_temporal.examples.seed",
            "--task-queue",
            task_queue,
        )
        async with _running(*worker_args, env=env, cwd=tmp_path) as worker:
            ran = await run_baton(
                "start", str(flow_file), "--task-queue", task_queue, "--wait", "--json",
                env=env, cwd=tmp_path,
            )  # fmt: skip
            assert ran.code == 0, (ran, worker)
            assert '"status": "completed"' in ran.out
    assert worker["code"] == 0, worker
    assert "worker stopped" in worker["err"]
    assert standin.billed_calls() == 2  # assess and report
