"""The Temporal server SIGKILLed mid-run and restarted on its database file: the runs
resume and complete, and the ledger still matches what the provider billed."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.cli._devserver import temporal_cli_path
from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from workers.examples import seed

from .support import (
    LLM_STEPS,
    classify,
    free_port,
    ledger_rows,
    seed_flow_data,
    start_seed_flow,
    table,
    tag_responder,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

FLOWS = 6


class DevServer:
    """``temporal server start-dev`` on a database file and a fixed port."""

    def __init__(self, db: Path, port: int, log: Path) -> None:
        self.db, self.port, self.log = db, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    temporal_cli_path(),
                    "server",
                    "start-dev",
                    "--db-filename",
                    str(self.db),
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--headless",
                    "--log-level",
                    "error",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


async def connect(address: str, timeout: float = 30) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(address)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def result_of(handle: WorkflowHandle[Any, Any], timeout: float) -> Any:
    """The run's result, riding out the moments when the server is away."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await handle.result()
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_server_killed_and_restarted_on_its_database_file(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "temporal.db", free_port(), tmp_path / "server.log")
    uid = uuid.uuid4().hex[:6]
    task_queue = f"faults-restart-{uid}"
    store = LedgerStore.from_url(
        f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=GenAIPricesPricer()
    )
    await store.migrate()
    server.start()
    began = time.monotonic()
    try:
        client = await connect(server.address)
        async with StandIn(latency=0.5, responder=tag_responder) as standin:
            plugin = baton.BatonPlugin(steps=seed.STEPS, ledger=store, llm=standin.config())
            async with Worker(client, task_queue=task_queue, plugins=[plugin]):
                handles = [
                    await start_seed_flow(
                        client,
                        seed_flow_data(f"flowtag-{uid}-{i}", f"restart-{uid}-{i}"),
                        task_queue,
                    )
                    for i in range(FLOWS)
                ]
                # Kill the server while the fan-out's calls are at the provider.
                await wait_until(
                    lambda: sum(r.outcome == "pending" for r in standin.requests) >= 3,
                    20,
                    "calls in flight",
                )
                in_flight = sum(r.outcome == "pending" for r in standin.requests)
                server.kill()
                killed = time.monotonic()
                await asyncio.sleep(2)
                server.start()
                results = await asyncio.gather(*(result_of(h, 90) for h in handles))
                resumed = time.monotonic() - killed
            requests = standin.requests
        rows = await ledger_rows(store)
    finally:
        server.stop()
        await store.close()

    for result in results:
        assert result.status == "completed" and not result.failed
        assert result.results["report"]["markdown"].startswith("# Document quality report")
    billed: collections.Counter[tuple[str, str]] = collections.Counter()
    for request in requests:
        tag, step = classify(request)
        assert tag is not None and step in LLM_STEPS
        if request.billed:
            billed[(tag.replace("flowtag-", "restart-"), step)] += 1
    recorded = collections.Counter((r["workflow_id"], r["step"]) for r in rows)
    # Every billed call is in the ledger; a call whose result could not be reported while
    # the server was down was made again by a later attempt, and both are recorded.
    assert recorded == billed
    assert len(recorded) == FLOWS * len(LLM_STEPS)
    again = sum(n - 1 for n in billed.values())
    figures = [
        ("runs started / completed", f"{FLOWS} / {len(results)}"),
        ("calls in flight at the kill", in_flight),
        ("server down (s)", 2),
        ("kill to all runs completed (s)", f"{resumed:.1f}"),
        (
            "steps that needed a retry",
            sum(s.attempt > 1 for r in results for s in r.steps.values()),
        ),
        ("calls billed / recorded", f"{sum(billed.values())} / {len(rows)}"),
        ("calls made again after the restart", again),
        ("wall time (s)", f"{time.monotonic() - began:.1f}"),
    ]
    print("\nTemporal server SIGKILL + restart on its database file")
    print(table(figures, ("figure", "value")))
