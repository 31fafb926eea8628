"""URLs and defaults, the wire form of records, the text tables, the Postgres helper."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from baton_temporal import stats
from baton_temporal.ledger import (
    LedgerConfigError,
    LedgerStore,
    ModelCost,
    StepStats,
    UsageRecord,
    WorkflowTotals,
    default_ledger_url,
    safe_url,
)
from baton_temporal.ledger._store import to_async_url
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing.postgres import PostgresNotFound, PostgresServer, find_postgres_bin
from baton_temporal.usage import LLMUsage


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        (
            "postgresql+psycopg2://u@h/db?sslmode=require",
            "postgresql+psycopg://u@h/db?sslmode=require",
        ),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///rel/ledger.sqlite3", "sqlite+aiosqlite:///rel/ledger.sqlite3"),
        ("sqlite+aiosqlite:////abs/ledger.sqlite3", "sqlite+aiosqlite:////abs/ledger.sqlite3"),
    ],
)
def test_urls_are_rewritten_to_async_drivers(given: str, expected: str) -> None:
    assert to_async_url(given).render_as_string(hide_password=False) == expected


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(LedgerConfigError, match="unsupported ledger database.*PostgreSQL"):
        LedgerStore.from_url("mysql://u:secret@h/db")
    with pytest.raises(LedgerConfigError, match="invalid ledger URL"):
        LedgerStore.from_url("not a url")
    with pytest.raises(LedgerConfigError, match="in-memory"):
        LedgerStore.from_url("sqlite://")
    assert "secret" not in safe_url("postgresql://u:secret@h/db")


def test_default_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATON_LEDGER_URL", "postgresql://x@y/z")
    assert default_ledger_url() == "postgresql://x@y/z"
    monkeypatch.delenv("BATON_LEDGER_URL")
    monkeypatch.chdir(tmp_path)
    assert default_ledger_url() == f"sqlite+aiosqlite:///{tmp_path / '.baton' / 'ledger.sqlite3'}"


async def test_default_store_is_an_embedded_sqlite_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BATON_LEDGER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    async with LedgerStore.from_url(pricer=GenAIPricesPricer()) as store:
        await store.migrate()
        assert store.dialect == "sqlite"
    assert (tmp_path / ".baton" / "ledger.sqlite3").is_file()
    totals = await stats.workflow_totals("nothing-yet")
    assert totals.calls == 0


def test_usage_record_wire_form() -> None:
    rec = UsageRecord(
        workflow_id="wf",
        run_id="r",
        workflow_name="n",
        step="s",
        activity_id="1",
        attempt=2,
        usage=LLMUsage(model="gpt-4o", input_tokens=5, call_id="c1"),
        status="step_failed",
    )
    wire = rec.model_dump(mode="json")
    assert isinstance(wire["recorded_at"], str) and isinstance(wire["usage"], dict)
    back = UsageRecord.model_validate(wire)
    assert back == rec and back.call_key == rec.call_key
    # The key is made of the call's identity only, not of when it was recorded.
    later = rec.model_copy(update={"recorded_at": datetime(2030, 1, 1, tzinfo=UTC)})
    assert later.call_key == rec.call_key
    other_attempt = rec.model_copy(update={"attempt": 3})
    assert other_attempt.call_key != rec.call_key
    with pytest.raises(ValidationError):
        UsageRecord.model_validate({**wire, "recorded_at": "2025-01-01T00:00:00"})  # naive
    with pytest.raises(ValidationError):
        UsageRecord.model_validate({**wire, "status": "maybe"})
    with pytest.raises(ValidationError):
        UsageRecord.model_validate({**wire, "attempt": 0})


def _step(step: str, model: str, cost: Decimal | None, unpriced: int) -> StepStats:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return StepStats(
        step=step,
        model=model,
        calls=2,
        attempts=1,
        input_tokens=12_345,
        output_tokens=10,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_usd=cost,
        unpriced_calls=unpriced,
        failed_calls=0,
        avg_latency_ms=None,
        first_recorded_at=now,
        last_recorded_at=now,
    )


def test_formatters() -> None:
    assert stats.format_cost(None) == "unpriced"
    assert stats.format_cost(Decimal("0.0123456")) == "$0.012346"
    assert stats.format_cost(Decimal("1234.5")) == "$1,234.500000"
    assert stats.format_cost(Decimal("0.0000000001")) == "<$0.000001"
    assert stats.format_cost(Decimal(0)) == "$0.000000"

    table = stats.format_steps(
        [_step("parse", "gpt-4o", Decimal("0.01"), 0), _step("fan", "in-house", None, 2)]
    )
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["step", "model", "calls"]
    assert set(lines[1]) <= {"-", " "}
    assert "12,345" in lines[2] and lines[2].endswith("$0.010000")
    assert lines[3].endswith("unpriced")
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule line up
    assert stats.format_steps([]) == "no LLM usage recorded"

    rows = [
        ModelCost(
            model="gpt-4o",
            calls=3,
            input_tokens=3,
            output_tokens=3,
            cache_read_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_usd=Decimal("0.5"),
            unpriced_calls=0,
        ),
        ModelCost(
            model="mine",
            calls=1,
            input_tokens=1,
            output_tokens=0,
            cache_read_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_usd=None,
            unpriced_calls=1,
        ),
    ]
    by_model = stats.format_cost_by_model(rows).splitlines()
    assert by_model[-1].split()[:2] == ["total", "4"] and by_model[-1].endswith("$0.500000")

    totals = WorkflowTotals(workflow_id="wf", calls=3, unpriced_calls=3)
    assert "unpriced" in stats.format_totals(totals)
    partial = WorkflowTotals(workflow_id="wf", calls=3, unpriced_calls=1, cost_usd=Decimal("2"))
    assert "$2.000000 (+1 unpriced)" in stats.format_totals(partial)
    assert "no LLM usage" in stats.format_totals(WorkflowTotals(workflow_id="wf"))


def test_missing_postgres_binaries_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotFound, match="apt-get install postgresql.*BATON_PG_BIN"):
        find_postgres_bin(tmp_path)


def test_postgres_helper_runs_unprivileged(postgres_server: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(postgres_server.url) as conn:
        assert conn.execute("SELECT current_setting('fsync')").fetchone() == ("off",)
        assert conn.execute("SELECT current_setting('listen_addresses')").fetchone() == (
            "127.0.0.1",
        )
    owner = os.stat(postgres_server.data_dir).st_uid
    if os.geteuid() == 0:
        assert owner != 0  # PostgreSQL refuses root; the helper ran it as someone else
