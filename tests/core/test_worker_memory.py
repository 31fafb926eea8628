"""What a worker loads: modules it does not use cost RSS in every worker process
(benchmarks/rss_breakdown.py measures it). Each check runs a real worker, the seed flow
against the stand-in and a real dev server, in a fresh subprocess, whose sys.modules is
then looked at."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import pytest
from temporalio.client import Client

from baton_temporal.testing.postgres import PostgresServer
from tests.ledger_support import ledger_rows, migrated_store

pytestmark = pytest.mark.timeout(120)

# Runs one seed flow on a worker of its own, then prints the top-level packages loaded.
_WORKER = """
import asyncio, json, os, sys, uuid
from temporalio.client import Client
from temporalio.worker import Worker
import baton_temporal as baton
from baton_temporal.examples import seed
from baton_temporal.testing import StandIn

async def main(address, ledger):
    with StandIn() as standin:
        os.environ.update(standin.env())
        client = await Client.connect(address)
        queue = "mem-" + uuid.uuid4().hex[:8]
        plugin = baton.BatonPlugin(
            steps=seed.STEPS, ledger=False if ledger == "none" else ledger, migrate=False
        )
        async with Worker(client, task_queue=queue, plugins=[plugin]):
            workflow_id = "mem-" + uuid.uuid4().hex
            flow = seed.quality_flow("one\\n\\ntwo", workflow_id=workflow_id)
            result = await (await flow.start(client, task_queue=queue)).result()
    roots = sorted({name.split(".")[0] for name in sys.modules})
    print(json.dumps({"status": result.status, "roots": roots, "modules": sorted(sys.modules),
                      "workflow_id": workflow_id}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _loaded_by_a_worker(client: Client, ledger: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        client.service_client.config.target_host,
        ledger,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 100)
    assert proc.returncode == 0, err.decode()[-3000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["status"] == "completed"
    return report


async def test_a_worker_without_a_ledger_never_loads_sqlalchemy(client: Client) -> None:
    # ledger=False: SQLAlchemy and the store's modules were imported at worker start
    # anyway (21 MiB of RSS for nothing).
    report = await _loaded_by_a_worker(client, "none")
    assert "sqlalchemy" not in report["roots"]
    assert "baton_temporal.ledger._store" not in report["modules"]


async def test_a_worker_with_a_postgres_ledger_writes_usage_without_sqlalchemy(
    client: Client, postgres_server: PostgresServer
) -> None:
    # A PostgreSQL ledger given as a URL: the worker writes usage through the light
    # writer (psycopg only); SQLAlchemy and its ORM (~21 MiB of RSS) stay out.
    name = f"mem_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        async with migrated_store(url) as store:
            report = await _loaded_by_a_worker(client, url)
            rows = await ledger_rows(store, report["workflow_id"])
        assert "sqlalchemy" not in report["roots"]
        assert "baton_temporal.ledger._store" not in report["modules"]
        assert "baton_temporal.ledger._pg_writer" in report["modules"]
        assert rows, "the flow's LLM calls left no ledger rows"
        assert {r["status"] for r in rows} == {"ok"}
        assert all(r["input_tokens"] > 0 and r["cost_usd"] is not None for r in rows)
    finally:
        postgres_server.drop_database(name)
