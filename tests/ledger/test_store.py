"""The ledger store against real SQLite and PostgreSQL databases (every test runs on both)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from sqlalchemy import event, select, text

from baton_temporal import stats
from baton_temporal.ledger import (
    LedgerNotMigrated,
    LedgerStore,
    LedgerUnavailable,
    LedgerWriteError,
    UsageRecord,
)
from baton_temporal.ledger._pg_writer import PgUsageWriter
from baton_temporal.ledger._rows import usage_row
from baton_temporal.ledger._schema import StepStat, quantize_cost
from baton_temporal.pricing import ChainPricer, GenAIPricesPricer, PricingError, TablePricer
from baton_temporal.testing.postgres import PostgresServer
from baton_temporal.usage import LLMUsage

from .conftest import RecordFactory


def expected_cost(model: str, provider: str | None, **tokens: int) -> Decimal:
    """genai-prices' own answer for the same call, rounded like the ledger column."""
    usage = genai_prices.Usage(**tokens)
    calc = genai_prices.calc_price(usage, model, provider_id=provider)
    return quantize_cost(calc.total_price)


async def test_record_is_idempotent(store: LedgerStore, make_record: RecordFactory) -> None:
    rec = make_record(model="gpt-4o", provider="openai", input_tokens=1000, output_tokens=50)
    assert await store.record([rec]) == 1
    assert await store.record([rec]) == 0
    # Re-delivered over Temporal's wire: JSON out, JSON in, same key.
    wire = rec.model_dump(mode="json")
    assert await store.record([UsageRecord.model_validate(wire)]) == 0
    assert await store.record(wire) == 0
    # Many deliveries racing each other still land once.
    twin = make_record(activity_id="2", input_tokens=10)
    counts = await asyncio.gather(*(store.record([twin]) for _ in range(8)))
    assert sum(counts) == 1
    totals = await store.workflow_totals("wf-1")
    assert totals.calls == 2
    assert totals.input_tokens == 1010


def _count_inserts(store: LedgerStore) -> list[int]:
    """A list whose length grows by one per INSERT the store sends to its database."""
    seen: list[int] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO STEP_STATS"):
            seen.append(1)

    event.listen(store.engine.sync_engine, "before_cursor_execute", on_execute)
    return seen


async def test_concurrent_records_share_one_insert(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    inserts = _count_inserts(store)
    recs = [make_record(activity_id=str(i), input_tokens=100 + i) for i in range(40)]
    # Two callers deliver the same call at once: it is new for exactly one of them.
    counts = await asyncio.gather(*(store.record(r) for r in recs), store.record(recs[0]))
    assert sum(counts) == 40
    assert counts[0] + counts[-1] == 1
    assert len(inserts) <= 2, f"{len(inserts)} INSERTs for 41 concurrent record() calls"
    totals = await store.workflow_totals("wf-1")
    assert totals.calls == 40
    assert totals.input_tokens == sum(100 + i for i in range(40))


@pytest.mark.parametrize("writer", ["store", "worker_writer"])
async def test_a_bad_row_fails_only_its_own_caller(
    pg_store: LedgerStore, make_record: RecordFactory, writer: str
) -> None:
    # PostgreSQL only: SQLite stores any integer; PostgreSQL refuses one out of range.
    # Both writers: the store, and the worker's psycopg-only writer (_pg_writer.py).
    store = pg_store
    url = store.engine.url.render_as_string(hide_password=False)
    sink = store if writer == "store" else PgUsageWriter(url, pricer=GenAIPricesPricer())
    try:
        good = [make_record(activity_id=str(i), input_tokens=10) for i in range(6)]
        # Built without validation, as a record from an older or foreign writer might be.
        bad = good[0].model_copy(update={"activity_id": "bad", "attempt": 2**40})
        outcomes = await asyncio.gather(
            *(sink.record(r) for r in good[:3]),
            sink.record(bad),
            *(sink.record(r) for r in good[3:]),
            return_exceptions=True,
        )
        assert outcomes[:3] + outcomes[4:] == [1] * 6
        # Refused by a reachable database: not an outage, so nothing would retry it forever.
        assert isinstance(outcomes[3], LedgerWriteError), outcomes[3]
        assert "retrying cannot help" in str(outcomes[3])
        assert (await store.workflow_totals("wf-1")).calls == 6
        # The writer goes on (its connection was replaced, not poisoned).
        assert await sink.record(make_record(activity_id="after", input_tokens=1)) == 1
    finally:
        if sink is not store:
            await sink.close()


async def test_retries_are_separate_attempts(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    common = {"model": "gpt-4o", "provider": "openai", "input_tokens": 500, "output_tokens": 20}
    await store.record(
        [
            make_record(attempt=1, status="step_failed", **common),
            make_record(attempt=2, **common),
        ]
    )
    totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.attempts, totals.steps) == (2, 2, 1)
    assert totals.failed_calls == 1
    assert totals.input_tokens == 1000
    # Both attempts cost money: the failed one is in the sum.
    one = expected_cost("gpt-4o", "openai", input_tokens=500, output_tokens=20)
    assert totals.cost_usd == 2 * one
    [row] = await store.steps_for_workflow("wf-1")
    assert (row.calls, row.attempts, row.failed_calls) == (2, 2, 1)


async def test_call_identity_within_an_attempt(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    # Without call ids, calls are told apart by their position in the attempt.
    usages = [LLMUsage(model="gpt-4o", input_tokens=n) for n in (10, 10, 30)]
    records = UsageRecord.for_attempt(
        usages,
        workflow_id="wf-1",
        run_id="run-1",
        workflow_name="analysis",
        step="fan",
        activity_id="7",
        attempt=1,
    )
    assert [r.call_index for r in records] == [0, 1, 2]
    assert len({r.call_key for r in records}) == 3
    assert await store.record(records) == 3
    # The same call_id is the same call, wherever it sits in the list (explicit
    # llm_usage plus auto-capture of the same call).
    a = make_record(step="s2", activity_id="8", call_index=0, call_id="c-1", input_tokens=5)
    b = make_record(step="s2", activity_id="8", call_index=1, call_id="c-1", input_tokens=5)
    assert await store.record([a, b]) == 1
    assert await store.record([b]) == 0
    assert (await store.workflow_totals("wf-1")).calls == 4


async def test_costs_match_genai_prices(store: LedgerStore, make_record: RecordFactory) -> None:
    cases = [
        # Anthropic-style call with cache reads and writes: input_tokens is the total.
        (
            "claude-sonnet-4-20250514",
            "anthropic",
            {"input_tokens": 12_000, "cache_read_tokens": 9_000, "cache_write_tokens": 2_000},
            {"output_tokens": 700},
        ),
        (
            "gpt-4o",
            "openai",
            {"input_tokens": 2_000, "cache_read_tokens": 1_024},
            {"output_tokens": 90},
        ),
        ("o3", None, {"input_tokens": 300}, {"output_tokens": 900, "reasoning_tokens": 600}),
    ]
    expected: dict[str, Decimal] = {}
    for i, (model, provider, inp, out) in enumerate(cases):
        await store.record(
            make_record(model=model, provider=provider, activity_id=str(i), **inp, **out)
        )
        gp = dict(inp, output_tokens=out["output_tokens"])
        if "reasoning_tokens" in out:
            gp["output_reasoning_tokens"] = out["reasoning_tokens"]
        expected[str(i)] = expected_cost(model, provider, **gp)

    # Row by row, read through the column type (on SQLite the raw value is scaled).
    t = StepStat.__table__
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(t.c.activity_id, t.c.cost_usd, t.c.price_model, t.c.price_version)
            )
        ).all()
    assert {r.activity_id: r.cost_usd for r in rows} == expected
    assert all(r.price_version == f"genai-prices {genai_prices.__version__}" for r in rows)
    assert "anthropic/claude-sonnet-4-0" in {r.price_model for r in rows}

    totals = await store.workflow_totals("wf-1")
    assert totals.unpriced_calls == 0
    assert totals.cost_usd == sum(expected.values())
    assert totals.cache_read_tokens == 10_024
    assert totals.reasoning_tokens == 600


async def test_unknown_model_is_unpriced(store: LedgerStore, make_record: RecordFactory) -> None:
    await store.record(
        [
            make_record(model="gpt-4o", provider="openai", input_tokens=100, output_tokens=10),
            make_record(model="our-fine-tune-v7", activity_id="2", input_tokens=100),
            make_record(model="gpt-4o", provider="no-such-cloud", activity_id="3", input_tokens=1),
        ]
    )
    totals = await store.workflow_totals("wf-1")
    assert totals.calls == 3
    assert totals.unpriced_calls == 2
    assert totals.cost_usd == expected_cost("gpt-4o", "openai", input_tokens=100, output_tokens=10)
    async with store.engine.connect() as conn:
        nulls = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM workflow_step_stats WHERE cost_usd IS NULL "
                    "AND price_model IS NULL AND price_version IS NULL"
                )
            )
        ).scalar_one()
    assert nulls == 2
    rows = {(r.step, r.model): r for r in await store.steps_for_workflow("wf-1")}
    assert rows[("summarize", "our-fine-tune-v7")].cost_usd is None
    assert "unpriced" in stats.format_steps(list(rows.values()))


class ExplodingPricer:
    def cost(self, usage: LLMUsage) -> None:
        raise RuntimeError("price service down")


async def test_a_failing_pricer_never_loses_usage(
    unmigrated_store: LedgerStore,
    make_record: RecordFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = unmigrated_store.engine.url
    async with LedgerStore.from_url(url, pricer=ExplodingPricer()) as store:
        await store.migrate()
        assert await store.record([make_record(input_tokens=7)]) == 1
        totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.unpriced_calls, totals.input_tokens) == (1, 1, 7)
    assert "price service down" in caplog.text


async def test_a_broken_prices_file_fails_at_start_not_reports(
    store: LedgerStore,
    make_record: RecordFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    await store.record([make_record(input_tokens=1)])
    bad = tmp_path / "prices.yaml"
    bad.write_text("m: {input: NaN, output: 1}\n")
    monkeypatch.setenv("BATON_PRICES_FILE", str(bad))
    monkeypatch.delenv("BATON_PRICER", raising=False)
    # A worker building its store stops at once, before any LLM call is made...
    with pytest.raises(PricingError, match="prices.yaml"):
        LedgerStore.from_url(store.engine.url)
    # ...while the stats queries, which price nothing, still work.
    monkeypatch.setenv("BATON_LEDGER_URL", store.engine.url.render_as_string(hide_password=False))
    assert (await stats.workflow_totals("wf-1")).calls == 1


async def test_table_pricer_in_front_of_genai_prices(
    unmigrated_store: LedgerStore, make_record: RecordFactory
) -> None:
    pricer = ChainPricer(
        TablePricer({"our-fine-tune-v7": {"input": "1.5", "output": "2"}}, version="v1"),
        GenAIPricesPricer(),
    )
    async with LedgerStore.from_url(unmigrated_store.engine.url, pricer=pricer) as store:
        await store.migrate()
        await store.record(
            make_record(model="our-fine-tune-v7", input_tokens=1_000_000, output_tokens=3)
        )
        totals = await store.workflow_totals("wf-1")
    assert totals.cost_usd == Decimal("1.500006")
    assert totals.unpriced_calls == 0


async def test_postgres_fast_insert_stores_what_sqlalchemy_would(
    pg_store: LedgerStore, make_record: RecordFactory
) -> None:
    # On PostgreSQL record() hands its INSERT to psycopg directly (ledger/_pg_insert.py).
    # The same record written through SQLAlchemy's own INSERT must give the same row.
    store = pg_store
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
    fast = make_record(activity_id="fast", recorded_at=when, **usage)
    slow = make_record(activity_id="slow", recorded_at=when, **usage)
    assert await store.record(fast) == 1
    async with store.engine.begin() as conn:
        await conn.execute(StepStat.__table__.insert().values(**usage_row(slow, store.pricer)))
        rows = {
            r.activity_id: r._asdict()
            for r in await conn.execute(select(StepStat.__table__).order_by(text("id")))
        }
    a, b = rows["fast"], rows["slow"]
    for differs in ("id", "call_key", "activity_id"):
        a.pop(differs), b.pop(differs)
    assert a == b
    assert a["cost_usd"] is not None and a["recorded_at"] == when


async def test_costs_are_exact_decimals(
    unmigrated_store: LedgerStore, make_record: RecordFactory
) -> None:
    # 16 significant digits in the sum: a float (SQLite REAL) would round it; the ledger
    # must not. (The price is near the bound of 100,000 USD per million tokens.)
    price = Decimal("99999.1234567891")
    pricer = TablePricer({"big": {"input": price, "output": 0}})
    async with LedgerStore.from_url(unmigrated_store.engine.url, pricer=pricer) as store:
        await store.migrate()
        await store.record(
            [make_record(model="big", activity_id=str(i), input_tokens=1_000_000) for i in (1, 2)]
            + [make_record(model="big", activity_id="3", input_tokens=1)]
        )
        totals = await store.workflow_totals("wf-1")
        [row] = await store.steps_for_workflow("wf-1")
    # The one-token call costs price/1e6, rounded half-up to 10 places.
    one_token = Decimal("0.0999991235")
    assert totals.cost_usd == 2 * price + one_token
    assert row.cost_usd == totals.cost_usd


async def test_steps_for_workflow(store: LedgerStore, make_record: RecordFactory) -> None:
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    await store.record(
        [
            make_record(
                step="parse",
                model="gpt-4o-mini",
                input_tokens=100,
                output_tokens=5,
                latency_ms=100,
                recorded_at=t0,
            ),
            make_record(
                step="fan_gpt_4o",
                activity_id="2",
                model="gpt-4o",
                input_tokens=200,
                output_tokens=7,
                latency_ms=300,
                recorded_at=t0 + timedelta(seconds=1),
            ),
            make_record(
                step="fan_gpt_4o",
                activity_id="2",
                call_index=1,
                model="gpt-4o",
                input_tokens=50,
                output_tokens=1,
                latency_ms=500,
                recorded_at=t0 + timedelta(seconds=1),
            ),
            make_record(
                step="fan_gpt_4o",
                activity_id="2",
                attempt=2,
                model="gpt-4o",
                input_tokens=200,
                output_tokens=7,
                recorded_at=t0 + timedelta(seconds=5),
            ),
            make_record(
                step="fan_o3",
                activity_id="3",
                model="o3",
                input_tokens=10,
                output_tokens=40,
                reasoning_tokens=30,
                recorded_at=t0 + timedelta(seconds=2),
            ),
            # Another workflow: never in this one's numbers.
            make_record(workflow_id="wf-2", step="parse", model="gpt-4o", input_tokens=999),
        ]
    )
    rows = await store.steps_for_workflow("wf-1")
    assert [(r.step, r.model) for r in rows] == [
        ("parse", "gpt-4o-mini"),
        ("fan_gpt_4o", "gpt-4o"),
        ("fan_o3", "o3"),
    ]
    fan = rows[1]
    assert (fan.calls, fan.attempts, fan.input_tokens, fan.output_tokens) == (3, 2, 450, 15)
    assert fan.avg_latency_ms == 400  # the call without latency is not averaged in
    assert fan.first_recorded_at == t0 + timedelta(seconds=1)
    assert fan.last_recorded_at == t0 + timedelta(seconds=5)
    assert fan.cost_usd == sum(
        expected_cost("gpt-4o", None, input_tokens=i, output_tokens=o)
        for i, o in ((200, 7), (50, 1), (200, 7))
    )
    assert rows[2].reasoning_tokens == 30
    totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.attempts, totals.steps) == (5, 4, 3)
    assert totals.cost_usd == sum(r.cost_usd or 0 for r in rows)
    assert await store.steps_for_workflow("no-such-workflow") == []
    empty = await store.workflow_totals("no-such-workflow")
    assert (empty.calls, empty.cost_usd) == (0, Decimal(0))


async def test_cost_by_model(store: LedgerStore, make_record: RecordFactory) -> None:
    june = datetime(2025, 6, 1, tzinfo=UTC)
    july = datetime(2025, 7, 1, tzinfo=UTC)
    await store.record(
        [
            make_record(
                model="gpt-4o",
                activity_id="1",
                input_tokens=1000,
                output_tokens=100,
                recorded_at=june,
            ),  # on the lower bound: in
            make_record(
                model="gpt-4o",
                activity_id="2",
                input_tokens=1000,
                output_tokens=100,
                recorded_at=july - timedelta(microseconds=1),
            ),
            make_record(
                model="gpt-4o",
                activity_id="3",
                input_tokens=1000,
                output_tokens=100,
                recorded_at=july,
            ),  # on the upper bound: out
            make_record(
                model="gpt-4o-mini",
                workflow_id="wf-2",
                input_tokens=10,
                recorded_at=june + timedelta(days=3),
            ),
            make_record(
                model="in-house",
                workflow_id="wf-3",
                input_tokens=10,
                recorded_at=june + timedelta(days=3),
            ),
            make_record(
                model="gpt-4o",
                workflow_id="wf-4",
                input_tokens=10,
                recorded_at=june - timedelta(seconds=1),
            ),  # before: out
        ]
    )
    # Bounds in another time zone are the same instants.
    cest = timezone(timedelta(hours=2))
    rows = await store.cost_by_model(june.astimezone(cest), july)
    assert [r.model for r in rows] == ["gpt-4o", "gpt-4o-mini", "in-house"]
    gpt = rows[0]
    assert (gpt.calls, gpt.input_tokens, gpt.output_tokens) == (2, 2000, 200)
    assert gpt.cost_usd == 2 * expected_cost("gpt-4o", None, input_tokens=1000, output_tokens=100)
    assert rows[2].cost_usd is None and rows[2].unpriced_calls == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.cost_by_model(datetime(2025, 6, 1), july)
    table = stats.format_cost_by_model(rows)
    assert "unpriced" in table and table.splitlines()[-1].startswith("total")


async def test_prune(store: LedgerStore, make_record: RecordFactory) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=100)
    await store.record(
        [make_record(activity_id=str(i), input_tokens=1, recorded_at=old) for i in range(7)]
        + [make_record(activity_id="new", input_tokens=1, recorded_at=now)]
    )
    for at in (old, old, now):
        await store.record_debug(
            workflow_id="wf-1",
            run_id="run-1",
            step="summarize",
            attempt=1,
            request={"messages": [{"role": "user", "content": "hi"}]},
            response={"content": "hello"},
            created_at=at,
        )
    # Small batches: the loop, not one big DELETE, does the work.
    result = await store.prune(timedelta(days=90), batch_size=3)
    assert (result.stats_rows, result.debug_rows) == (7, 2)
    assert (await store.workflow_totals("wf-1")).calls == 1
    [log] = await store.debug_logs("wf-1")
    assert log.request["messages"][0]["content"] == "hi"
    assert log.created_at == now
    again = await store.prune(timedelta(days=90))
    assert (again.stats_rows, again.debug_rows) == (0, 0)
    with pytest.raises(ValueError):
        await store.prune(timedelta(days=-1))


async def test_unmigrated_database_names_the_fix(
    unmigrated_store: LedgerStore, make_record: RecordFactory
) -> None:
    with pytest.raises(LedgerNotMigrated, match=r"baton db upgrade.*store\.migrate\(\)"):
        await unmigrated_store.record([make_record(input_tokens=1)])
    with pytest.raises(LedgerNotMigrated):
        await unmigrated_store.workflow_totals("wf-1")
    await unmigrated_store.migrate()
    await unmigrated_store.migrate()  # again: a no-op
    assert await unmigrated_store.record([make_record(input_tokens=1)]) == 1


async def test_auto_migrate(unmigrated_store: LedgerStore, make_record: RecordFactory) -> None:
    url = unmigrated_store.engine.url
    # Several workers starting at once, each with auto-migrate, on one empty database.
    stores = [
        LedgerStore.from_url(url, pricer=GenAIPricesPricer(), auto_migrate=True) for _ in range(4)
    ]
    try:
        counts = await asyncio.gather(
            *(
                s.record([make_record(activity_id=str(i), input_tokens=1)])
                for i, s in enumerate(stores)
            )
        )
    finally:
        for s in stores:
            await s.close()
    assert counts == [1, 1, 1, 1]
    async with LedgerStore.from_url(url, pricer=GenAIPricesPricer()) as store:
        await store.check_schema()
        assert (await store.workflow_totals("wf-1")).calls == 4


def test_revisions_read_from_the_files_match_alembic() -> None:
    # The worker reads the migrations' revision ids without Alembic; Alembic must agree.
    from alembic.script import ScriptDirectory

    from baton_temporal.ledger._migrations import (
        MIGRATIONS_DIR,
        head_revisions,
        known_revisions,
    )

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert head_revisions() == frozenset(script.get_heads())
    assert known_revisions() == frozenset(r.revision for r in script.walk_revisions())
    assert len(known_revisions()) >= 2


async def test_checking_the_schema_leaves_alembic_unimported(
    store: LedgerStore, tmp_path: Path
) -> None:
    # A worker checks the revision at every start; Alembic (8 MiB) stays out of it.
    script = (
        "import asyncio, sys\n"
        "from baton_temporal.ledger import LedgerStore, LedgerNotMigrated\n"
        "async def main():\n"
        "    async with LedgerStore.from_url(sys.argv[1]) as s:\n"
        "        await s.check_schema()\n"
        "    async with LedgerStore.from_url(sys.argv[2]) as s:\n"
        "        try:\n"
        "            await s.check_schema()\n"
        "        except LedgerNotMigrated as err:\n"
        "            print('not migrated:', err)\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    urls = [
        store.engine.url.render_as_string(hide_password=False),
        f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}",
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *urls,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert "baton db upgrade" in lines[0]
    assert lines[-1] == "False"


async def test_schema_matches_models(store: LedgerStore) -> None:
    # The migration and the declarative models must describe the same tables.
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from baton_temporal.ledger._schema import VERSION_TABLE, Base

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return compare_metadata(ctx, Base.metadata)

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_stats_module_uses_default_store(
    store: LedgerStore, make_record: RecordFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.record([make_record(model="gpt-4o", input_tokens=10, output_tokens=1)])
    url = store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("BATON_LEDGER_URL", url)
    monkeypatch.delenv("BATON_PRICER", raising=False)
    monkeypatch.delenv("BATON_PRICES_FILE", raising=False)
    totals = await stats.workflow_totals("wf-1")
    assert totals == await store.workflow_totals("wf-1")
    assert await stats.steps_for_workflow("wf-1", store=store) == await stats.steps_for_workflow(
        "wf-1"
    )
    now = datetime.now(UTC)
    rows = await stats.cost_by_model(now - timedelta(hours=1), now + timedelta(hours=1))
    assert [r.model for r in rows] == ["gpt-4o"]
    # The caller's store is left open.
    assert (await store.workflow_totals("wf-1")).calls == 1


async def test_unreachable_postgres_is_ledger_unavailable(make_record: RecordFactory) -> None:
    from baton_temporal.testing.postgres import _free_port

    url = f"postgresql://baton:s3cret-pw@127.0.0.1:{_free_port()}/baton"
    async with LedgerStore.from_url(url, connect_timeout=2) as store:
        for attempt in (store.migrate(), store.record([make_record(input_tokens=1)])):
            with pytest.raises(LedgerUnavailable) as info:
                await attempt
            message = str(info.value)
            assert "s3cret-pw" not in message
            assert "127.0.0.1" in message and "***" in message
            assert "BATON_LEDGER_URL" in message


async def test_unreachable_sqlite_is_ledger_unavailable(tmp_path, make_record) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ledger.sqlite3'}"
    async with LedgerStore.from_url(url) as store:
        with pytest.raises(LedgerUnavailable, match="unable to open database file"):
            await store.record([make_record(input_tokens=1)])


async def test_postgres_outage_and_recovery(
    own_postgres_server: PostgresServer, make_record: RecordFactory
) -> None:
    pg = own_postgres_server
    async with LedgerStore.from_url(pg.url, pricer=GenAIPricesPricer(), connect_timeout=2) as store:
        await store.migrate()
        assert await store.record([make_record(activity_id="before", input_tokens=1)]) == 1

        pg.stop()
        during = make_record(activity_id="during", input_tokens=2)
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            await store.record([during])
        with pytest.raises(LedgerUnavailable):
            await store.workflow_totals("wf-1")

        pg.start()
        # The workflow layer retries the same record: it lands once, on the same pool.
        assert await store.record([during]) == 1
        assert await store.record([during]) == 0
        totals = await store.workflow_totals("wf-1")
        assert (totals.calls, totals.input_tokens) == (2, 3)

        # A crash (no clean shutdown) mid-way between writes: same story.
        pg.stop(mode="immediate")
        crash = make_record(activity_id="crash", input_tokens=4)
        with pytest.raises(LedgerUnavailable):
            await store.record([crash])
        pg.start()
        assert await store.record([crash]) == 1
        assert (await store.workflow_totals("wf-1")).input_tokens == 7

        # A restart between two writes (nothing written meanwhile): the connection the
        # store keeps for writes is dead, and the next write still lands at once.
        pg.stop(mode="immediate")
        pg.start()
        after = make_record(activity_id="after-restart", input_tokens=8)
        assert await store.record([after]) == 1
        assert (await store.workflow_totals("wf-1")).input_tokens == 15


@pytest.mark.parametrize("writer", ["store", "worker_writer"])
async def test_a_hung_write_times_out_and_frees_the_queue(
    pg_store: LedgerStore, make_record: RecordFactory, writer: str
) -> None:
    # Writes queue behind the one in flight, so a write the database never answers must
    # not hold the others forever: it fails after the store's timeout, and the next lands.
    # PostgreSQL only: it needs a second server session holding a table lock.
    # Both writers: the store, and the worker's psycopg-only writer (_pg_writer.py).
    store = pg_store
    url = store.engine.url.render_as_string(hide_password=False)
    opener = LedgerStore.from_url if writer == "store" else PgUsageWriter
    fast = opener(url, pricer=GenAIPricesPricer(), connect_timeout=1)
    try:
        assert await fast.record(make_record(activity_id="warm")) == 1
        async with store.engine.connect() as locker:
            await locker.execute(text("LOCK TABLE workflow_step_stats IN ACCESS EXCLUSIVE MODE"))
            started = asyncio.get_running_loop().time()
            outcomes = await asyncio.gather(
                *(fast.record(make_record(activity_id=f"blocked-{i}")) for i in range(3)),
                return_exceptions=True,
            )
            waited = asyncio.get_running_loop().time() - started
            await locker.rollback()
        assert all(isinstance(o, LedgerUnavailable) for o in outcomes), outcomes
        assert waited < 5, f"queued writes waited {waited:.1f} s"
        assert await fast.record(make_record(activity_id="blocked-0")) == 1
        assert (await store.workflow_totals("wf-1")).calls == 2
    finally:
        await fast.close()


async def test_values_that_look_like_sql_or_placeholders_are_stored_verbatim(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    # Rows go to PostgreSQL with server-side placeholders ($1, $2, ...): text shaped like
    # a placeholder, a quote or a statement in any value must come back as it went in.
    odd = ["wf-$1-%s", "step $2; DROP TABLE step_stats; --", "it's %(x)s \\ $$ ü"]
    recs = [
        make_record(workflow_id=odd[0], step=odd[1], activity_id=str(i), call_id=odd[2])
        for i in range(3)
    ]
    assert sum(await asyncio.gather(*(store.record(r) for r in recs))) == 3
    totals = await store.workflow_totals(odd[0])
    assert totals.calls == 3
    [row] = await store.steps_for_workflow(odd[0])
    assert row.step == odd[1]
    async with store.engine.connect() as conn:
        ids = (await conn.execute(select(StepStat.call_id))).scalars().all()
    assert ids == [odd[2]] * 3
