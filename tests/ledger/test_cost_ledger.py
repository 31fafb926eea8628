"""Cost truth in the store: intents and lost replies, the call's-day price, repricing,
strict model names, writes too big for one statement, writes that can never succeed, and
the 0002 migration over rows written before it. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from baton_temporal.ledger import (
    LedgerStore,
    LedgerWriteError,
)
from baton_temporal.ledger._schema import StepStat
from baton_temporal.pricing import GenAIPricesPricer, PricingError, TablePricer
from baton_temporal.usage import MAX_TOKENS, LLMUsage

from .conftest import RecordFactory, intent

BEFORE_CHANGE = datetime(2026, 1, 10, tzinfo=UTC)  # claude-sonnet-4-6's price changed
AFTER_CHANGE = datetime(2026, 6, 10, tzinfo=UTC)  # on 2026-03-13 in genai-prices' data


async def rows(store: LedgerStore) -> list[dict]:
    table = StepStat.__table__
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.select(table).order_by(table.c.id))
        return [dict(r) for r in result.mappings()]


async def test_an_intent_is_completed_by_its_usage_and_never_overwrites_it(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    call = intent()
    assert await store.begin_call(call) is True
    [row] = await rows(store)
    assert (row["status"], row["input_tokens"], row["cost_usd"]) == ("pending", 1000, None)
    assert (await store.workflow_totals("wf-1")).pending_calls == 1
    done = make_record(attempt=1, input_tokens=1234, output_tokens=56, call_id=call.call_id)
    assert done.call_key == call.call_key
    assert await store.record(done) == 1
    [row] = await rows(store)
    assert (row["status"], row["input_tokens"], row["output_tokens"]) == ("ok", 1234, 56)
    assert row["cost_usd"] is not None
    # A late or repeated intent changes nothing; nor does the same usage again.
    assert await store.begin_call(call) is False
    assert await store.record(done) == 0
    assert (await store.workflow_totals("wf-1")).calls == 1
    # The attempt failed after the call: "ok" becomes "step_failed", nothing else moves.
    failed = done.model_copy(update={"status": "step_failed"})
    assert await store.record(failed) == 1
    [row] = await rows(store)
    assert (row["status"], row["input_tokens"]) == ("step_failed", 1234)
    # ... and never back.
    assert await store.record(done) == 0


async def test_orphaned_intents_become_lost_replies_that_real_usage_still_replaces(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    await store.begin_call(intent(attempt=1, index=0, chars=4000))
    await store.begin_call(intent(attempt=1, index=1, chars=401))
    await store.begin_call(intent(attempt=2, index=0))  # the running attempt: left alone
    lost = await store.reconcile(
        workflow_id="wf-1", run_id="run-1", activity_id="1", before_attempt=2
    )
    assert lost == 2
    stored = await rows(store)
    assert [(r["attempt"], r["status"], r["input_tokens"]) for r in stored] == [
        (1, "lost_reply", 1000),
        (1, "lost_reply", 101),
        (2, "pending", 1000),
    ]
    assert all(r["output_tokens"] == 0 and r["cost_usd"] is None for r in stored[:2])
    assert "output unknown" in stored[0]["price_note"]
    totals = await store.workflow_totals("wf-1")
    assert (totals.calls, totals.lost_replies, totals.pending_calls) == (3, 2, 1)
    assert totals.unpriced_calls == 3
    # The old attempt's usage arrives after all (a zombie attempt, a carried record).
    late = make_record(attempt=1, input_tokens=999, output_tokens=9, call_id="summarize/1/0")
    assert await store.record(late) == 1
    assert (await rows(store))[0]["status"] == "ok"
    assert (await store.workflow_totals("wf-1")).lost_replies == 1


async def test_a_call_without_a_billed_reply_leaves_no_intent(store: LedgerStore) -> None:
    call = intent()
    await store.begin_call(call)
    assert await store.cancel_call(call.call_key) is True
    assert await rows(store) == []
    assert await store.cancel_call(call.call_key) is False


async def test_the_intent_of_a_prompt_no_provider_accepts_is_still_written(
    store: LedgerStore,
) -> None:
    # A 1 GB prompt estimates to 250M tokens, beyond the ledger's bounds: the intent once
    # failed its write with a pydantic ValidationError, which failed the step before the
    # request left (the provider would have answered with a clear 400). Now the estimate
    # is capped and the request goes.
    call = intent(chars=10**9)
    assert call.estimated_input_tokens == MAX_TOKENS
    assert await store.begin_call(call) is True
    (row,) = await rows(store)
    assert (row["status"], row["input_tokens"], row["prompt_chars"]) == (
        "pending",
        MAX_TOKENS,
        10**9,
    )


async def test_reconcile_ended_asks_about_each_run_and_skips_running_ones(
    store: LedgerStore,
) -> None:
    for run in ("done", "going"):
        old = intent().model_copy(update={"run_id": run})
        await store.begin_call(
            old.model_copy(update={"requested_at": datetime.now(UTC) - timedelta(hours=1)})
        )
    asked: list[tuple[str, str]] = []

    async def has_ended(workflow_id: str, run_id: str) -> bool:
        asked.append((workflow_id, run_id))
        return run_id == "done"

    result = await store.reconcile_ended(has_ended, older_than=timedelta(minutes=5))
    assert sorted(asked) == [("wf-1", "done"), ("wf-1", "going")]
    assert (result.lost_replies, result.still_running) == (1, 1)
    assert sorted((r["run_id"], r["status"]) for r in await rows(store)) == [
        ("done", "lost_reply"),
        ("going", "pending"),
    ]
    # Too recent to be orphans: not even looked at.
    fresh = await store.reconcile_ended(has_ended, older_than=timedelta(days=1))
    assert (fresh.lost_replies, fresh.still_running) == (0, 0)


async def test_a_call_is_priced_at_the_prices_of_its_own_day(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    usage = {"model": "claude-sonnet-4-6", "provider": "anthropic", "input_tokens": 1_000_000}
    early = make_record(activity_id="early", requested_at=BEFORE_CHANGE, **usage)
    # Written (recorded) long after the call, e.g. after a ledger outage: still the
    # price of the call's day.
    late_write = early.model_copy(update={"activity_id": "late", "recorded_at": AFTER_CHANGE})
    after = make_record(activity_id="after", requested_at=AFTER_CHANGE, **usage)
    await store.record([early, late_write, after])
    costs = {r["activity_id"]: r["cost_usd"] for r in await rows(store)}
    assert costs["early"] == costs["late"]
    assert costs["early"] != costs["after"]
    pricer = GenAIPricesPricer()
    for key, when in (("early", BEFORE_CHANGE), ("after", AFTER_CHANGE)):
        quote = pricer.cost(LLMUsage(**usage, requested_at=when))
        assert quote is not None and costs[key] == quote.cost_usd


async def test_reprice_prices_stored_rows_with_the_installed_prices(
    unmigrated_store: LedgerStore, make_record: RecordFactory
) -> None:
    url = unmigrated_store.engine.url
    nothing = TablePricer({"other-model": {"input": 1, "output": 1}}, version="none")
    async with LedgerStore.from_url(url, pricer=nothing) as blind:
        await blind.migrate()
        await blind.record(
            [
                make_record(
                    activity_id="old", model="gpt-4o", input_tokens=1000, requested_at=BEFORE_CHANGE
                ),
                make_record(
                    activity_id="new", model="gpt-4o", input_tokens=1000, requested_at=AFTER_CHANGE
                ),
                make_record(
                    activity_id="odd",
                    model="gpt-4o-mystery",
                    input_tokens=1000,
                    requested_at=AFTER_CHANGE,
                ),
            ]
        )
        await blind.begin_call(intent())  # a pending intent is never repriced
    async with LedgerStore.from_url(url, pricer=GenAIPricesPricer()) as store:
        assert (await store.workflow_totals("wf-1")).unpriced_calls == 4
        since = await store.reprice(since=AFTER_CHANGE - timedelta(days=1))
        assert (since.rows, since.priced, since.unpriced) == (2, 1, 1)
        by_id = {r["activity_id"]: r for r in await rows(store)}
        assert by_id["old"]["cost_usd"] is None and by_id["new"]["cost_usd"] is not None
        assert by_id["new"]["price_version"].startswith("genai-prices ")
        everything = await store.reprice(unpriced_only=True)
        assert (everything.rows, everything.changed, everything.priced) == (2, 1, 1)
        again = await store.reprice()
        assert (again.rows, again.changed) == (3, 0)  # idempotent
        final = {r["activity_id"]: r for r in await rows(store)}
        assert final["old"]["cost_usd"] == final["new"]["cost_usd"] == Decimal("0.0025")
        assert final["odd"]["cost_usd"] is None


async def test_look_alike_names_are_stored_unpriced_with_the_candidate(
    unmigrated_store: LedgerStore, make_record: RecordFactory
) -> None:
    url = unmigrated_store.engine.url
    async with LedgerStore.from_url(url, pricer=GenAIPricesPricer()) as store:
        await store.migrate()
        await store.record(
            [
                make_record(
                    activity_id="a",
                    model="claude-sonnet-4-5-mystery",
                    provider="anthropic",
                    input_tokens=100,
                ),
                make_record(
                    activity_id="b",
                    model="claude-sonnet-4-5-20250929",
                    provider="anthropic",
                    input_tokens=100,
                ),
            ]
        )
        by_id = {r["activity_id"]: r for r in await rows(store)}
    odd, dated = by_id["a"], by_id["b"]
    assert odd["cost_usd"] is None and odd["price_model"] == "anthropic/claude-sonnet-4-5"
    assert "prefix-only match" in odd["price_note"]
    assert "BATON_PRICE_PREFIX_MATCH=1" in odd["price_note"]
    assert dated["cost_usd"] is not None and dated["price_note"] is None
    # With prefix matching on, the look-alike gets the candidate's price.
    loose = GenAIPricesPricer(prefix_match=True)
    async with LedgerStore.from_url(url, pricer=loose) as store:
        result = await store.reprice(unpriced_only=True)
        assert result.priced == 1
        by_id = {r["activity_id"]: r for r in await rows(store)}
    assert by_id["a"]["cost_usd"] == by_id["b"]["cost_usd"]


async def test_one_write_of_thousands_of_calls_is_split_under_the_parameter_limits(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    # 5,000 rows x 33 columns = 165,000 parameters: over PostgreSQL's 65,535 and
    # SQLite's 32,766 in one statement.
    records = [make_record(call_index=i, input_tokens=i) for i in range(5000)]
    assert await store.record(records) == 5000
    totals = await store.workflow_totals("wf-1")
    assert totals.calls == 5000 and totals.input_tokens == sum(range(5000))
    assert await store.record(records) == 0


async def test_a_write_the_database_refuses_is_not_an_outage(
    store: LedgerStore, make_record: RecordFactory
) -> None:
    # A trigger stands for any refusal of a reachable database (a constraint, a value
    # out of range): the write can never succeed, so it must not be "unavailable".
    async with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON workflow_step_stats "
                    "WHEN NEW.model = 'refused' BEGIN SELECT RAISE(ABORT, 'refused by rule'); END"
                )
            )
        else:
            await conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.model = 'refused' THEN RAISE EXCEPTION 'refused by rule'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON workflow_step_stats "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
    with pytest.raises(LedgerWriteError, match="refused by rule") as caught:
        await store.record(make_record(model="refused"))
    assert "retrying cannot help" in str(caught.value)
    # The store keeps working (no AttributeError, no poisoned connection).
    assert await store.record(make_record(activity_id="fine")) == 1


def test_token_counts_and_prices_beyond_bounds_are_refused_when_validated() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 100000000"):
        LLMUsage(model="gpt-4o", input_tokens=MAX_TOKENS + 1)
    with pytest.raises(ValidationError, match="web_search_requests"):
        LLMUsage(model="gpt-4o", web_search_requests=10**9)
    with pytest.raises(ValidationError, match="cache_write_1h_tokens"):
        LLMUsage(model="m", input_tokens=10, cache_write_tokens=2, cache_write_1h_tokens=3)
    with pytest.raises(PricingError, match="per MILLION tokens"):
        TablePricer({"m": {"input": 3_000_000, "output": 1}})


async def test_a_quote_beyond_bounds_is_stored_unpriced_with_the_reason(
    unmigrated_store: LedgerStore, make_record: RecordFactory
) -> None:
    class Wild:
        def cost(self, usage: LLMUsage):  # type: ignore[no-untyped-def]
            from baton_temporal.pricing import PriceQuote

            return PriceQuote(cost_usd=Decimal("1e12"), price_model="wild", price_version="1")

    async with LedgerStore.from_url(unmigrated_store.engine.url, pricer=Wild()) as store:
        await store.migrate()
        assert await store.record(make_record()) == 1
        [row] = await rows(store)
    assert row["cost_usd"] is None and "outside" in row["price_note"]


async def test_rows_written_before_0002_keep_working_after_it(
    unmigrated_store: LedgerStore,
) -> None:
    from alembic import command

    from baton_temporal.ledger._migrations import alembic_config

    url = unmigrated_store.engine.url
    command.upgrade(alembic_config(url), "0001")
    sync = sa.create_engine(url.set(drivername=url.drivername.split("+")[0]))
    try:
        with sync.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO workflow_step_stats (call_key, workflow_id, run_id, "
                    "workflow_name, step, activity_id, attempt, call_index, model, "
                    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
                    "reasoning_tokens, status, recorded_at) VALUES ('k-old', 'wf-1', 'r', "
                    "'a', 's', '1', 1, 0, 'gpt-4o', 1000, 10, 0, 0, 0, 'ok', "
                    "'2025-01-01 00:00:00')"
                )
            )
    finally:
        sync.dispose()
    await unmigrated_store.migrate()
    [row] = await rows(unmigrated_store)
    assert (row["cache_write_1h_tokens"], row["web_search_requests"]) == (0, 0)
    assert row["requested_at"] is None and row["cost_usd"] is None
    totals = await unmigrated_store.workflow_totals("wf-1")
    assert (totals.calls, totals.input_tokens, totals.lost_replies) == (1, 1000, 0)
    # Priced later at its recorded day (the call's time was not kept then).
    result = await unmigrated_store.reprice()
    assert (result.rows, result.priced) == (1, 1)
