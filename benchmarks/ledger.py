"""Ledger benchmarks: write latency, and query times on a ledger of many rows.

Rows are generated inside the database (``generate_series`` on PostgreSQL, a recursive
CTE on SQLite), through the store's own engine, into the migrated schema with all its
indexes: a million rows take seconds, not minutes. Each workflow has 10 rows (calls),
spread over 90 days, 8 models (one unpriced), 1% of calls from failed attempts.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from baton_temporal.ledger import LedgerStore, UsageRecord
from baton_temporal.usage import LLMUsage

from .measure import summary

ROWS_PER_WORKFLOW = 10
SPAN = timedelta(days=90)
MODELS = [
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-haiku-4-5",
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "gpt-4.1",
    "in-house-llm",  # unpriced: cost NULL
]
STEPS = ["parse", "assess_sonnet_4", "assess_opus_4", "assess_gpt_4o", "assess_synthesis", "report"]

_INSERT = """INSERT INTO workflow_step_stats (
  call_key, workflow_id, run_id, workflow_name, step, activity_id, attempt, call_index,
  call_id, model, provider, input_tokens, output_tokens, cache_read_tokens,
  cache_write_tokens, reasoning_tokens, latency_ms, cost_usd, price_model, price_version,
  status, recorded_at)"""

_PG_FILL = """
{insert}
SELECT
  encode(sha256(('bench-' || i)::bytea), 'hex'),
  'wf-' || (i / {per}), 'run-' || (i / {per}), 'multi-model-quality',
  (ARRAY[{steps}])[1 + i % {nsteps}], (i % {per})::text, 1, 0,
  'c-' || i,
  (ARRAY[{models}])[1 + (i * 7) % {nmodels}],
  CASE WHEN (i * 7) % {nmodels} < 3 THEN 'anthropic' ELSE 'openai' END,
  800 + i % 1200, 50 + i % 300, (i % 5) * 100, 0, 0, 200 + i % 900,
  CASE WHEN (i * 7) % {nmodels} = {nmodels} - 1 THEN NULL
       ELSE ((800 + i % 1200) * 0.000003 + (50 + i % 300) * 0.000015)::numeric(20,10) END,
  'bench', 'bench',
  CASE WHEN i % 100 = 0 THEN 'step_failed' ELSE 'ok' END,
  now() - make_interval(secs => i * {step_s})
FROM generate_series(:lo, :hi - 1) AS i
"""

_SQLITE_FILL = """
WITH RECURSIVE seq(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :hi)
{insert}
SELECT
  lower(hex(randomblob(32))),
  'wf-' || (i / {per}), 'run-' || (i / {per}), 'multi-model-quality',
  json_extract('[{steps}]', '$[' || (i % {nsteps}) || ']'), CAST(i % {per} AS TEXT), 1, 0,
  'c-' || i,
  json_extract('[{models}]', '$[' || ((i * 7) % {nmodels}) || ']'),
  CASE WHEN (i * 7) % {nmodels} < 3 THEN 'anthropic' ELSE 'openai' END,
  800 + i % 1200, 50 + i % 300, (i % 5) * 100, 0, 0, 200 + i % 900,
  CASE WHEN (i * 7) % {nmodels} = {nmodels} - 1 THEN NULL
       ELSE (800 + i % 1200) * 30000 + (50 + i % 300) * 150000 END,
  'bench', 'bench',
  CASE WHEN i % 100 = 0 THEN 'step_failed' ELSE 'ok' END,
  strftime('%Y-%m-%d %H:%M:%S', 'now', '-' || CAST(i * {step_s} AS INTEGER) || ' seconds')
    || '.000000'
FROM seq
"""


def _fill_sql(dialect: str, rows: int) -> str:
    step_s = SPAN.total_seconds() / rows
    if dialect == "postgresql":
        quote = lambda xs: ", ".join(f"'{x}'" for x in xs)  # noqa: E731
        template = _PG_FILL
    else:
        quote = lambda xs: ", ".join(f'"{x}"' for x in xs)  # noqa: E731
        template = _SQLITE_FILL
    return template.format(
        insert=_INSERT,
        per=ROWS_PER_WORKFLOW,
        steps=quote(STEPS),
        nsteps=len(STEPS),
        models=quote(MODELS),
        nmodels=len(MODELS),
        step_s=f"{step_s:.6f}",
    )


async def fill(store: LedgerStore, rows: int, chunk: int = 250_000) -> float:
    """Insert ``rows`` generated rows; return seconds taken (ANALYZE included)."""
    sql = text(_fill_sql(store.dialect, rows))
    started = time.perf_counter()
    for lo in range(0, rows, chunk):
        async with store.engine.begin() as conn:
            await conn.execute(sql, {"lo": lo, "hi": min(rows, lo + chunk)})
    async with store.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


async def _timed(fn: Any, reps: int) -> dict[str, Any]:
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return summary(samples)


async def bench_store(store: LedgerStore, rows: int, *, quick: bool) -> dict[str, Any]:
    """Fill the (migrated, empty) ledger, then time writes and the queries we offer."""
    fill_s = await fill(store, rows)
    async with store.engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM workflow_step_stats"))).scalar()
    rng = random.Random(7)
    n_workflows = rows // ROWS_PER_WORKFLOW
    now = datetime.now(UTC)

    async def totals() -> None:
        wf = f"wf-{rng.randrange(n_workflows)}"
        t = await store.workflow_totals(wf)
        assert t.calls == ROWS_PER_WORKFLOW, (wf, t)

    async def steps() -> None:
        await store.steps_for_workflow(f"wf-{rng.randrange(n_workflows)}")

    async def by_model_day() -> None:
        out = await store.cost_by_model(now - timedelta(days=1), now)
        assert out

    async def by_model_all() -> None:
        await store.cost_by_model(now - SPAN - timedelta(days=1), now + timedelta(days=1))

    run_id = uuid.uuid4().hex

    def record_batch(i: int) -> list[UsageRecord]:
        usage = LLMUsage(
            model="gpt-4o",
            provider="openai",
            input_tokens=900,
            output_tokens=120,
            call_id=f"bench/{run_id}/{i}",
            latency_ms=300,
        )
        return UsageRecord.for_attempt(
            [usage],
            workflow_id=f"bench-write-{run_id}",
            run_id=run_id,
            workflow_name="bench",
            step="assess_gpt_4o",
            activity_id=str(i),
            attempt=1,
        )

    counter = iter(range(10**9))

    async def write() -> None:
        await store.record(record_batch(next(counter)))

    await totals()  # connect, check the schema once
    reps = 60 if quick else 300
    return {
        "rows": int(count or 0),
        "fill_seconds": round(fill_s, 1),
        "workflow_totals_ms": await _timed(totals, reps),
        "steps_for_workflow_ms": await _timed(steps, reps // 3),
        "cost_by_model_1day_ms": await _timed(by_model_day, 10 if quick else 30),
        "cost_by_model_90days_ms": await _timed(by_model_all, 3 if quick else 5),
        "record_one_call_ms": await _timed(write, reps),
    }
