"""Every benchmark worker process starts and polls: `make bench` once stopped at start for
weeks because its worker still reached for a module the layout step had moved
(``baton._accounting``), and nothing short of the 17-minute run noticed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from baton_temporal.testing import StandIn
from benchmarks.infra import Proc, child_environment

WORKERS = [
    ("benchmarks.worker", "baton", ["--ledger", "none"]),
    ("benchmarks.worker", "plain", []),
    ("benchmarks.scale_worker", "baton", ["--slots", "10"]),
    ("benchmarks.scale_worker", "plain", ["--slots", "10"]),
]


@pytest.mark.parametrize(
    ("module", "kind", "extra"), WORKERS, ids=[f"{m}-{k}" for m, k, _ in WORKERS]
)
async def test_a_benchmark_worker_starts_and_polls(
    temporal_env: WorkflowEnvironment, tmp_path: Path, module: str, kind: str, extra: list[str]
) -> None:
    address = temporal_env.client.service_client.config.target_host
    queue = f"bench-start-{uuid.uuid4().hex[:8]}"
    args = ["-m", module, "--kind", kind, "--address", address, "--task-queue", queue, *extra]
    with StandIn() as standin:
        proc, first = await Proc.start(
            f"{module}-{kind}", args, env=child_environment(standin.env()), log_dir=tmp_path
        )
        try:
            assert first == {"ready": True}
        finally:
            assert proc.proc.stdin is not None
            proc.proc.stdin.write(b"quit\n")
            await proc.proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.proc.wait(), 30)
            except TimeoutError:
                proc.proc.kill()
                await proc.proc.wait()
                raise
