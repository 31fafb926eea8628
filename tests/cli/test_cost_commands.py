"""``baton db reconcile`` / ``baton db reprice`` and ledger URLs that must not leak
their passwords, run as the real ``baton`` program."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from baton_temporal.ledger import CallIntent, LedgerStore
from baton_temporal.pricing import TablePricer
from baton_temporal.usage import LLMUsage

from ._util import clean_env, run_baton


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u@127.0.0.1/db?password=hunter2sekrit", None),
        ("host=127.0.0.1 dbname=db password=hunter2sekrit", "libpq 'key=value' string"),
        ("postgresql://u:hunter2sekrit@127.0.0.1:abc/db", "the port must be a number"),
    ],
)
async def test_ledger_passwords_never_show_in_errors(
    url: str, says: str | None, tmp_path: Path
) -> None:
    ran = await run_baton("db", "upgrade", "--url", url, env=clean_env(), cwd=tmp_path)
    assert ran.code != 0
    assert "hunter2sekrit" not in ran.out + ran.err
    assert "unexpected error" not in ran.err and "Traceback" not in ran.err
    if says is not None:
        assert ran.code == 2 and says in ran.err
        assert "postgresql://user:pass@host:5432/db" in ran.err  # the fix: the URL form


async def test_reprice_prices_rows_stored_unpriced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    blind = TablePricer({"nothing": {"input": 1, "output": 1}})
    async with LedgerStore.from_url(url, pricer=blind) as store:
        await store.migrate()
        await store.record(
            {
                "workflow_id": "wf",
                "run_id": "r",
                "step": "s",
                "activity_id": "1",
                "attempt": 1,
                "usage": LLMUsage(model="gpt-4o", input_tokens=1000).model_dump(),
            }
        )
    ran = await run_baton("db", "reprice", "--unpriced-only", "--url", url, env=clean_env())
    assert ran.code == 0, ran.err
    assert "repriced 1 row(s)" in ran.out and "1 priced, 0 still unpriced" in ran.out
    assert "genai-prices" in ran.out
    bad = await run_baton("db", "reprice", "--since", "last tuesday", "--url", url)
    assert bad.code == 2 and "use ISO 8601" in bad.err


async def test_reconcile_turns_intents_of_ended_runs_into_lost_replies(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    async with LedgerStore.from_url(url) as store:
        await store.migrate()
        # A run Temporal does not know (ended, past its retention) left an intent.
        await store.begin_call(
            CallIntent(
                workflow_id="gone-workflow",
                run_id=str(uuid.uuid4()),
                step="s",
                activity_id="1",
                attempt=1,
                call_id="s/1/0",
                model="gpt-4o",
                prompt_chars=800,
                requested_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    # Not found is not "ended": left alone unless the user says those runs are past
    # their retention.
    ran = await run_baton("db", "reconcile", "--url", url, env=cli_env)
    assert ran.code == 0, ran.err
    assert "0 call(s) of ended runs" in ran.out
    assert "1 run(s) not found in namespace 'default' were left alone" in ran.out
    assert "TEMPORAL_NAMESPACE" in ran.out and "--missing-as-ended" in ran.out
    ran = await run_baton("db", "reconcile", "--missing-as-ended", "--url", url, env=cli_env)
    assert ran.code == 0, ran.err
    assert "1 call(s) of ended runs recorded as lost replies" in ran.out
    stats = await run_baton("stats", "totals", "gone-workflow", "--url", url, env=cli_env)
    assert stats.code == 0, stats.err
    assert "lost replies" in stats.out and "output unknown" in stats.out
    again = await run_baton("db", "reconcile", "--url", url, env=cli_env)
    assert "0 call(s)" in again.out
    await asyncio.sleep(0)


async def test_reconcile_never_closes_intents_of_live_runs_in_a_wrong_namespace(
    cli_env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    # A run that stays open (no worker polls its queue), with an old intent.
    handle = await client.start_workflow(
        "NoSuchWorkflowType", id=f"live-{uuid.uuid4().hex[:8]}", task_queue="nobody-polls"
    )
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    async with LedgerStore.from_url(url) as store:
        await store.migrate()
        await store.begin_call(
            CallIntent(
                workflow_id=handle.id,
                run_id=handle.result_run_id or "",
                step="s",
                activity_id="1",
                attempt=1,
                call_id="s/1/0",
                model="gpt-4o",
                prompt_chars=800,
                requested_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    try:
        wrong = await run_baton(
            "db", "reconcile", "--url", url, env={**cli_env, "TEMPORAL_NAMESPACE": "prod-typo"}
        )
        assert wrong.code == 2 and "Traceback" not in wrong.err
        assert "namespace 'prod-typo' does not exist" in wrong.err
        assert "set TEMPORAL_NAMESPACE" in wrong.err
        right = await run_baton("db", "reconcile", "--url", url, env=cli_env)
        assert right.code == 0, right.err
        assert "0 call(s) of ended runs" in right.out and "1 run(s) still going" in right.out
        async with LedgerStore.from_url(url) as store:
            totals = await store.workflow_totals(handle.id)
        assert (totals.pending_calls, totals.lost_replies) == (1, 0)
    finally:
        await handle.terminate()
