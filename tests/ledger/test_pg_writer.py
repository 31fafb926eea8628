"""The worker's light PostgreSQL writer (ledger/_pg_writer.py, psycopg only): the same
writes as LedgerStore, with the same SQL effects and errors. Each test writes through
the writer and reads back through a LedgerStore on the same real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
import pytest_asyncio
import sqlalchemy as sa

from baton_temporal import BatonPlugin
from baton_temporal.ledger import (
    LedgerConfigError,
    LedgerNotMigrated,
    LedgerStore,
    LedgerUnavailable,
)
from baton_temporal.ledger._pg_insert import PG_BINDS
from baton_temporal.ledger._pg_writer import PgUsageWriter
from baton_temporal.ledger._revisions import head_revisions, known_revisions
from baton_temporal.ledger._rows import STEP_STAT_COLUMNS
from baton_temporal.ledger._schema import VERSION_TABLE, DebugLog, StepStat
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing.postgres import PostgresServer, _free_port

from .conftest import RecordFactory, intent

Pair = tuple[PgUsageWriter, LedgerStore]


@pytest_asyncio.fixture
async def pair(pg_store: LedgerStore) -> AsyncIterator[Pair]:
    """A light writer and a store on one migrated PostgreSQL database."""
    url = pg_store.engine.url.render_as_string(hide_password=False)
    writer = PgUsageWriter(url, pricer=GenAIPricesPricer())
    try:
        yield writer, pg_store
    finally:
        await writer.close()


async def rows(store: LedgerStore) -> list[dict[str, Any]]:
    table = StepStat.__table__
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.select(table).order_by(table.c.id))
        return [dict(r) for r in result.mappings()]


def test_the_light_column_list_is_the_table() -> None:
    # The light writer's INSERT is built from the constant; the table from the model.
    table = cast(sa.Table, StepStat.__table__)
    assert tuple(c.name for c in table.columns) == STEP_STAT_COLUMNS
    converted = {c.name for c in table.columns if isinstance(c.type, sa.types.TypeDecorator)}
    assert set(PG_BINDS) == converted


async def test_record_is_idempotent(pair: Pair, make_record: RecordFactory) -> None:
    writer, store = pair
    rec = make_record(model="gpt-4o", provider="openai", input_tokens=1000, output_tokens=50)
    assert await writer.record([rec]) == 1
    assert await writer.record([rec]) == 0
    wire = rec.model_dump(mode="json")
    assert await writer.record(wire) == 0
    assert await store.record(rec) == 0  # the store sees the writer's row as the same
    twin = make_record(activity_id="2", input_tokens=10)
    counts = await asyncio.gather(*(writer.record([twin]) for _ in range(8)))
    assert sum(counts) == 1
    totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.input_tokens) == (2, 1010)
    assert totals.cost_usd > 0


async def test_rows_are_the_ones_the_store_writes(pair: Pair, make_record: RecordFactory) -> None:
    writer, store = pair
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    usage = {
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 12_345,
        "cache_read_tokens": 1_000,
        "output_tokens": 678,
        "reasoning_tokens": 9,
        "latency_ms": 321,
        "call_id": "call-1",
    }
    assert await writer.record(make_record(activity_id="light", recorded_at=when, **usage)) == 1
    assert await store.record(make_record(activity_id="store", recorded_at=when, **usage)) == 1
    unknown = {"model": "gpt-4o", "usage_unknown": "no usage block", "call_id": "u"}
    assert (
        await writer.record(
            make_record(activity_id="light", attempt=2, recorded_at=when, **unknown)
        )
        == 1
    )
    assert (
        await store.record(make_record(activity_id="store", attempt=2, recorded_at=when, **unknown))
        == 1
    )
    for a in ("light", "store"):
        call = intent().model_copy(update={"activity_id": a, "requested_at": when})
        assert await (writer if a == "light" else store).begin_call(call) is True
    stored = await rows(store)
    assert len(stored) == 6
    by = {(r["activity_id"], r["attempt"], r["status"]): r for r in stored}
    for key in ((1, "ok"), (2, "usage_unknown"), (1, "pending")):
        a, b = by[("light", *key)], by[("store", *key)]
        for differs in ("id", "call_key", "activity_id"):
            a.pop(differs), b.pop(differs)
        assert a == b, key
    assert by[("store", 1, "ok")]["cost_usd"] is not None
    # Debug logs too.
    for target in (writer, store):
        await target.record_debug(
            workflow_id="wf-1",
            run_id="run-1",
            step="s",
            attempt=1,
            request={"messages": [{"role": "user", "content": "é"}]},
            response=None,
            created_at=when,
        )
    async with store.engine.connect() as conn:
        debug = [dict(r._mapping) for r in await conn.execute(sa.select(DebugLog.__table__))]
    assert len(debug) == 2
    for r in debug:
        r.pop("id")
    assert debug[0] == debug[1]
    assert [e.request for e in await store.debug_logs("wf-1")] == [debug[0]["request"]] * 2


async def test_an_intent_is_completed_by_its_usage_and_never_overwrites_it(
    pair: Pair, make_record: RecordFactory
) -> None:
    writer, store = pair
    call = intent()
    assert await writer.begin_call(call) is True
    [row] = await rows(store)
    assert (row["status"], row["input_tokens"], row["cost_usd"]) == ("pending", 1000, None)
    done = make_record(attempt=1, input_tokens=1234, output_tokens=56, call_id=call.call_id)
    assert await writer.record(done) == 1
    [row] = await rows(store)
    assert (row["status"], row["input_tokens"], row["output_tokens"]) == ("ok", 1234, 56)
    assert await writer.begin_call(call) is False
    assert await writer.record(done) == 0
    failed = done.model_copy(update={"status": "step_failed"})
    assert await writer.record(failed) == 1
    [row] = await rows(store)
    assert (row["status"], row["input_tokens"]) == ("step_failed", 1234)
    assert await writer.record(done) == 0
    assert (await rows(store))[0]["status"] == "step_failed"


async def test_cancel_removes_only_provisional_rows(pair: Pair, make_record: RecordFactory) -> None:
    writer, store = pair
    pending, lost, done = intent(index=0), intent(index=1), intent(index=2)
    for call in (pending, lost, done):
        await writer.begin_call(call)
    await writer.reconcile(workflow_id="wf-1", run_id="run-1", call_key=lost.call_key)
    await writer.record(make_record(input_tokens=5, call_id=done.call_id))
    assert await writer.cancel_call(pending.call_key) is True
    assert await writer.cancel_call(pending.call_key) is False
    # A lost-reply estimate goes; real usage stays.
    assert await writer.cancel_calls([lost.call_key, done.call_key, lost.call_key]) == 1
    assert [(r["call_id"], r["status"]) for r in await rows(store)] == [(done.call_id, "ok")]


async def test_reconcile_marks_lost_replies_that_usage_still_replaces(
    pair: Pair, make_record: RecordFactory
) -> None:
    writer, store = pair
    await writer.begin_call(intent(attempt=1, index=0, chars=4000))
    await writer.begin_call(intent(attempt=1, index=1, chars=401))
    await writer.begin_call(intent(attempt=2, index=0))
    lost = await writer.reconcile(
        workflow_id="wf-1", run_id="run-1", activity_id="1", before_attempt=2
    )
    assert lost == 2
    stored = await rows(store)
    assert [(r["attempt"], r["status"], r["input_tokens"]) for r in stored] == [
        (1, "lost_reply", 1000),
        (1, "lost_reply", 101),
        (2, "pending", 1000),
    ]
    assert "output unknown" in stored[0]["price_note"]
    assert await writer.reconcile(workflow_id="wf-1", run_id="run-1", reason="gone") == 1
    assert (await rows(store))[2]["price_note"] == "gone"
    late = make_record(attempt=1, input_tokens=999, output_tokens=9, call_id="summarize/1/0")
    assert await writer.record(late) == 1
    totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.lost_replies, totals.pending_calls) == (3, 2, 0)


async def test_thousands_of_rows_are_split_under_the_parameter_limit(
    pair: Pair, make_record: RecordFactory
) -> None:
    writer, store = pair
    records = [make_record(call_index=i, input_tokens=i) for i in range(1200)]
    assert await writer.record(records) == 1200
    assert (await store.workflow_totals("wf-1")).input_tokens == sum(range(1200))
    assert await writer.record(records) == 0


async def test_an_unmigrated_or_outdated_database_names_the_fix(
    postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    writer = PgUsageWriter(url, pricer=GenAIPricesPricer())
    try:
        with pytest.raises(LedgerNotMigrated, match=r"no ledger tables; run `baton db upgrade`"):
            await writer.check_schema()
        with pytest.raises(LedgerNotMigrated, match="baton db upgrade"):
            await writer.record(make_record(input_tokens=1))
        with pytest.raises(LedgerNotMigrated, match="baton db upgrade"):
            await writer.begin_call(intent())
        await writer.migrate()  # hands over to a LedgerStore
        await writer.check_schema()
        assert await writer.record(make_record(input_tokens=1)) == 1
        # A database left at an older revision (a release behind).
        older = sorted(known_revisions() - head_revisions())[-1]
        async with LedgerStore.from_url(url) as store, store.engine.begin() as conn:
            await conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '{older}'"))
        stale = PgUsageWriter(url)
        try:
            with pytest.raises(LedgerNotMigrated, match=f"at revision {older}.*baton db upgrade"):
                await stale.record(make_record(activity_id="2", input_tokens=1))
        finally:
            await stale.close()
    finally:
        await writer.close()
        postgres_server.drop_database(name)


async def test_a_missing_column_is_not_migrated(pair: Pair, make_record: RecordFactory) -> None:
    writer, store = pair
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE workflow_step_stats DROP COLUMN speed"))
    with pytest.raises(LedgerNotMigrated, match="missing or out of date.*baton db upgrade"):
        await writer.record(make_record(input_tokens=1))


async def test_unreachable_postgres_is_ledger_unavailable(make_record: RecordFactory) -> None:
    url = f"postgresql://baton:s3cret-pw@127.0.0.1:{_free_port()}/baton"
    writer = PgUsageWriter(url, connect_timeout=2)
    try:
        for attempt in (
            writer.record([make_record(input_tokens=1)]),
            writer.check_schema(),
            writer.cancel_call("k"),
        ):
            with pytest.raises(LedgerUnavailable) as info:
                await attempt
            message = str(info.value)
            assert "s3cret-pw" not in message
            assert "127.0.0.1" in message and "***" in message
            assert "BATON_LEDGER_URL" in message
    finally:
        await writer.close()


def test_bad_urls_are_config_errors() -> None:
    for url, fix in (
        ("postgresql://u:pw@host:abc/db", "port must be a number"),
        ("postgresql://u:pw@host/db?nosuchoption=1", "expected e.g. postgresql://"),
    ):
        with pytest.raises(LedgerConfigError, match=fix) as info:
            PgUsageWriter(url)
        assert "pw@" not in str(info.value)
    # A password with a space or an "@" in a URL refused for another reason: hidden whole
    # in the message, by the writer and by the store alike.
    for url in ("postgresql://u:se cret@db:abc/l", "postgresql://u:se@cret@db:abc/l"):
        for open_it in (PgUsageWriter, LedgerStore.from_url):
            with pytest.raises(LedgerConfigError, match="port must be a number") as info:
                open_it(url)
            assert "cret" not in str(info.value) and "u:***@db:abc/l" in str(info.value)


def test_the_url_is_shown_as_the_store_shows_it() -> None:
    for url in (
        "postgresql://baton:s3cret@db.internal:5433/ledger",
        "postgres://baton@db/ledger?sslmode=require",
        "postgresql+psycopg://u:p%40ss@[::1]:5432/db",
    ):
        assert PgUsageWriter(url).url == LedgerStore.from_url(url).url
    secret = "postgresql://u@db/l?sslpassword=hunter2&sslmode=require"
    shown = PgUsageWriter(secret).url
    assert shown == LedgerStore.from_url(secret).url and "hunter2" not in shown
    # A password with characters a URL would escape, given unescaped: the store reads
    # it (its grammar lets the password run to the last "@"), and so must the writer.
    assert PgUsageWriter("postgresql://u:p a/s?s%@db/l").url == "postgresql+psycopg://u:***@db/l"
    # An unescaped "@" in it: read as ending at the first one (as the store reads it),
    # and no part of it shown as the host.
    for open_it in (PgUsageWriter, LedgerStore.from_url):
        assert open_it("postgresql://u:se@cret@db/l").url == "postgresql+psycopg://u:***@db/l"


def test_the_plugin_writes_postgres_usage_through_the_light_writer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    url = "postgresql://baton:pw@db/ledger"
    assert isinstance(BatonPlugin(ledger=url)._make_store(), PgUsageWriter)
    assert isinstance(BatonPlugin(ledger=url, migrate=False)._make_store(), PgUsageWriter)
    # Migrating needs Alembic, so the store.
    assert isinstance(BatonPlugin(ledger=url, migrate=True)._make_store(), LedgerStore)
    monkeypatch.setenv("BATON_LEDGER_URL", url)
    assert isinstance(BatonPlugin()._make_store(), PgUsageWriter)
    sqlite = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    assert isinstance(BatonPlugin(ledger=sqlite)._make_store(), LedgerStore)
    monkeypatch.setenv("BATON_LEDGER_URL", sqlite)
    assert isinstance(BatonPlugin()._make_store(), LedgerStore)
    with pytest.raises(LedgerConfigError, match="port must be a number"):
        BatonPlugin(ledger="postgresql://h:x/db")._make_store()
    # A URL read from a file (a trailing newline): accepted whether it migrates or not.
    for migrate in (None, True):
        assert BatonPlugin(ledger=f" {url}\n", migrate=migrate)._make_store() is not None


async def test_a_restarted_postgres_is_reconnected_to(
    own_postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    pg = own_postgres_server
    async with LedgerStore.from_url(pg.url, pricer=GenAIPricesPricer()) as store:
        await store.migrate()
    writer = PgUsageWriter(pg.url, pricer=GenAIPricesPricer(), connect_timeout=2)
    try:
        assert await writer.record(make_record(activity_id="before", input_tokens=1)) == 1
        await writer.begin_call(intent())
        pg.stop()
        during = make_record(activity_id="during", input_tokens=2)
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            await writer.record([during])
        with pytest.raises(LedgerUnavailable):
            await writer.cancel_call(intent().call_key)
        pg.start()
        assert await writer.record([during]) == 1
        # A restart between two writes: the kept connections are dead; the next writes
        # (the upsert, and the rare ones) land at once.
        pg.stop(mode="immediate")
        pg.start()
        assert await writer.record(make_record(activity_id="after", input_tokens=4)) == 1
        assert await writer.cancel_call(intent().call_key) is True
        await writer.check_schema()
    finally:
        await writer.close()
    async with LedgerStore.from_url(pg.url) as store:
        totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.input_tokens, totals.pending_calls) == (3, 7, 0)


async def test_urls_the_store_opens_the_writer_opens_too(
    postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    """A password with unescaped "/", "?", "%" and a space, the ledger in its own
    schema (``options=-csearch_path=...``) and an application name with a space: the
    store migrates and reads there, the worker's writer writes there."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    base = postgres_server.create_database(name)
    with postgres_server._connect(name) as conn:
        conn.execute("CREATE SCHEMA ledger")
    url = (
        base.replace("baton@", "baton:p/w?x%z y@")
        + "?options=-csearch_path%3Dledger&application_name=baton worker&sslmode=disable"
    )
    try:
        async with LedgerStore.from_url(url, pricer=GenAIPricesPricer()) as store:
            await store.migrate()
        writer = BatonPlugin(ledger=url)._make_store()
        assert isinstance(writer, PgUsageWriter)
        assert writer.url == LedgerStore.from_url(url).url and "p/w" not in writer.url
        try:
            await writer.check_schema()
            assert await writer.record(make_record(input_tokens=3)) == 1
        finally:
            await writer.close()
        async with LedgerStore.from_url(url) as store:
            assert (await store.workflow_totals("wf-1")).input_tokens == 3
        with postgres_server._connect(name) as conn:
            where = conn.execute(
                "SELECT table_schema FROM information_schema.tables "
                "WHERE table_name = 'workflow_step_stats'"
            ).fetchall()
        assert where == [("ledger",)]
    finally:
        postgres_server.drop_database(name)


async def test_a_read_only_database_defers_the_write_on_both_writers(
    pair: Pair, postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    """A database that turned read-only (a failover to a standby, maintenance) answers
    every write with 25006: the usage must be kept for later (LedgerUnavailable), not
    refused for good (LedgerWriteError drops the row)."""
    writer, store = pair
    database = str(store.engine.url.database)

    def read_only(on: bool) -> None:
        with postgres_server._connect(database) as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = '
                + ("on" if on else "off")
            )

    read_only(True)
    await store.engine.dispose()  # fresh connections take the new default
    try:
        for sink in (writer, store):
            with pytest.raises(LedgerUnavailable, match="read-only transaction"):
                await sink.record(make_record(input_tokens=5))
    finally:
        read_only(False)
        await store.engine.dispose()
    assert await writer.record(make_record(input_tokens=5)) == 1
    assert (await store.workflow_totals("wf-1")).input_tokens == 5


async def test_debug_bodies_with_nul_surrogates_or_nan_are_saved_alike(pair: Pair) -> None:
    """A prompt or reply holding NUL, a lone surrogate or NaN: jsonb refuses them as they
    are, and the whole debug entry was lost. Both writers save the same cleaned body."""
    writer, store = pair
    odd = {"text": "a\x00b", "k\x00": "\ud800x", "scores": [float("nan"), float("-inf")]}
    for sink in (writer, store):
        await sink.record_debug(
            workflow_id="wf-odd", run_id="r", step="s", attempt=1, request=odd, response=odd
        )
    saved = await store.debug_logs("wf-odd")
    assert len(saved) == 2
    cleaned = {"text": "a\ufffdb", "k\ufffd": "\ufffdx", "scores": ["NaN", "-Infinity"]}
    assert [(e.request, e.response) for e in saved] == [(cleaned, cleaned)] * 2


async def test_a_nul_in_a_reply_s_text_fields_does_not_lose_the_paid_call(
    pair: Pair, make_record: RecordFactory
) -> None:
    """A provider (or a proxy) that puts a NUL in the model name or service tier: the
    call was paid; PostgreSQL's text columns refuse NUL, and the row was refused for good
    (LedgerWriteError: dropped). Both writers store it, with U+FFFD in its place."""
    writer, store = pair
    for index, sink in enumerate((writer, store)):
        record = make_record(
            call_index=index, model="gpt-4o\x00", service_tier="x\x00", input_tokens=7
        )
        assert await sink.record(record) == 1
    stored = await rows(store)
    assert [(r["model"], r["service_tier"]) for r in stored] == [("gpt-4o\ufffd", "x\ufffd")] * 2
    assert (await store.workflow_totals("wf-1")).input_tokens == 14


async def test_a_login_refused_mid_run_keeps_the_usage_for_later(
    pair: Pair, postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    """Credentials rotated or revoked under a running worker (class 28 at connect): the
    database is not refusing the rows, it is not letting the worker in. The usage must be
    kept for later (LedgerUnavailable), not refused for good (LedgerWriteError drops it)."""
    _, store = pair
    database = str(store.engine.url.database)
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server._connect(database) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
        conn.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    url = postgres_server.url_for(database).replace(f"{postgres_server.user}@", f"{role}@")
    rotated = PgUsageWriter(url, pricer=GenAIPricesPricer(), connect_timeout=2)
    try:
        assert await rotated.record(make_record(activity_id="before", input_tokens=1)) == 1
        await rotated.close()  # the next write opens a connection, as after a restart
        with postgres_server._connect(database) as conn:
            conn.execute(f'ALTER ROLE "{role}" NOLOGIN')
        late = make_record(activity_id="during", input_tokens=2)
        with pytest.raises(LedgerUnavailable, match="not permitted to log in"):
            await rotated.record(late)
        with postgres_server._connect(database) as conn:
            conn.execute(f'ALTER ROLE "{role}" LOGIN')
        assert await rotated.record(late) == 1
    finally:
        await rotated.close()
    assert (await store.workflow_totals("wf-1")).input_tokens == 3


async def test_a_role_that_may_not_write_is_refused_before_any_call_is_lost(
    pair: Pair, postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    """A worker whose database role may read the ledger but not write it: the schema
    check passed and every paid call's row was then refused for good (dropped). Now the
    worker's preflight stops with the GRANT to run, and writes are kept for later."""
    _, store = pair
    database = str(store.engine.url.database)
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server._connect(database) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    url = postgres_server.url_for(database).replace(f"{postgres_server.user}@", f"{role}@")
    with pytest.raises(LedgerConfigError, match=f"role '{role}' may not write.*GRANT") as info:
        await BatonPlugin(ledger=url).preflight()
    assert "INSERT on workflow_step_stats" in str(info.value)
    reader = PgUsageWriter(url, pricer=GenAIPricesPricer())
    try:
        with pytest.raises(LedgerConfigError, match="may not write"):
            await reader.record(make_record(input_tokens=1))
    finally:
        await reader.close()
    with postgres_server._connect(database) as conn:
        conn.execute(f'GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
        conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    await BatonPlugin(ledger=url).preflight()
    writer = PgUsageWriter(url, pricer=GenAIPricesPricer())
    try:
        assert await writer.record(make_record(input_tokens=1)) == 1
        await writer.record_debug(
            workflow_id="wf-1", run_id="r", step="s", attempt=1, request={}, response={}
        )
    finally:
        await writer.close()
