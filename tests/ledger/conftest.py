"""Ledger fixtures: real databases only, SQLite and PostgreSQL, never mocks.

One PostgreSQL server (from the machine's binaries, see baton_temporal.testing.postgres)
serves the whole session; each test gets a database of its own on it, or a SQLite file
of its own, so tests that count or prune rows never see each other's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from baton_temporal.ledger import CallIntent, LedgerStore, UsageRecord
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing.postgres import PostgresError, PostgresServer, start_postgres
from baton_temporal.usage import LLMUsage

BACKENDS = ["sqlite", "postgres"]


def _start_server() -> PostgresServer:
    try:
        return start_postgres()
    except PostgresError as err:
        # Not a skip: a ledger suite that silently ran on SQLite only would hide
        # every PostgreSQL-specific bug.
        pytest.fail(f"cannot start the test PostgreSQL server: {err}", pytrace=False)


@pytest.fixture
def own_postgres_server() -> Iterator[PostgresServer]:
    """A server of the test's own, for tests that stop and start it."""
    server = _start_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A URL of an empty database (plain ``postgresql://`` / ``sqlite:///`` form)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest_asyncio.fixture
async def unmigrated_store(ledger_url: str) -> AsyncIterator[LedgerStore]:
    store = LedgerStore.from_url(ledger_url, pricer=GenAIPricesPricer())
    try:
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def store(unmigrated_store: LedgerStore) -> LedgerStore:
    # The pricer is explicit so that BATON_PRICER / BATON_PRICES_FILE in the developer's
    # environment cannot change what the tests expect.
    await unmigrated_store.migrate()
    return unmigrated_store


@pytest_asyncio.fixture
async def pg_store(postgres_server: PostgresServer) -> AsyncIterator[LedgerStore]:
    """A migrated store on PostgreSQL only, for behaviour only PostgreSQL has (its own
    INSERT path, integer ranges, table locks from a second session)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    store = LedgerStore.from_url(url, pricer=GenAIPricesPricer())
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
        postgres_server.drop_database(name)


RecordFactory = Callable[..., UsageRecord]


@pytest.fixture
def make_record() -> RecordFactory:
    """``make_record(model=..., input_tokens=..., step=..., attempt=...)`` -> UsageRecord."""

    def make(
        *,
        workflow_id: str = "wf-1",
        run_id: str = "run-1",
        workflow_name: str = "analysis",
        step: str = "summarize",
        activity_id: str = "1",
        attempt: int = 1,
        call_index: int = 0,
        status: str = "ok",
        recorded_at: datetime | None = None,
        **usage: Any,
    ) -> UsageRecord:
        usage.setdefault("model", "gpt-4o")
        return UsageRecord(
            workflow_id=workflow_id,
            run_id=run_id,
            workflow_name=workflow_name,
            step=step,
            activity_id=activity_id,
            attempt=attempt,
            call_index=call_index,
            usage=LLMUsage(**usage),
            status=status,  # type: ignore[arg-type]
            recorded_at=recorded_at or datetime.now(UTC),
        )

    return make


def intent(attempt: int = 1, index: int = 0, chars: int = 4000) -> CallIntent:
    return CallIntent(
        workflow_id="wf-1",
        run_id="run-1",
        workflow_name="analysis",
        step="summarize",
        activity_id="1",
        attempt=attempt,
        call_index=index,
        call_id=f"summarize/{attempt}/{index}",
        model="gpt-4o",
        prompt_chars=chars,
    )
