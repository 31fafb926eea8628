"""Usage and cost queries over the ledger, and plain-text tables of their results.

Each query takes an optional ``store``; without one it opens the default ledger
(``$BATON_LEDGER_URL``, else ``./.baton/ledger.sqlite3``) for that one call and closes it
again: nothing is cached between calls.

Example::

    from baton_temporal import stats

    totals = await stats.workflow_totals("wf-1")
    totals.cost_usd                     # Decimal('0.0123450000'), priced calls only
    print(stats.format_totals(totals))
    rows = await stats.cost_by_model(datetime(2025, 6, 1, tzinfo=UTC),
                                     datetime(2025, 7, 1, tzinfo=UTC))
    print(stats.format_cost_by_model(rows))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal

from ._terminal import shown
from .ledger import LedgerStore, ModelCost, StepStats, WorkflowTotals
from .usage import LLMUsage

__all__ = [
    "ModelCost",
    "StepStats",
    "WorkflowTotals",
    "combine_costs",
    "cost_by_model",
    "format_cost",
    "format_cost_by_model",
    "format_steps",
    "format_totals",
    "steps_for_workflow",
    "workflow_totals",
]


class _NoPricing:
    """The pricer of a store that only reads: never configured, never asked."""

    def cost(self, usage: LLMUsage) -> None:
        return None


@asynccontextmanager
async def _using(store: LedgerStore | None) -> AsyncIterator[LedgerStore]:
    if store is not None:
        yield store  # the caller's store: the caller closes it
        return
    # Queries price nothing: a broken BATON_PRICES_FILE must not stop a report.
    async with LedgerStore.from_url(pricer=_NoPricing()) as own:
        yield own


async def workflow_totals(workflow_id: str, store: LedgerStore | None = None) -> WorkflowTotals:
    """Tokens and cost of one workflow, all runs and attempts (zeros if none recorded).

    Example::

        t = await stats.workflow_totals("wf-1")
        t.input_tokens, t.output_tokens, t.cost_usd, t.unpriced_calls
    """
    async with _using(store) as s:
        return await s.workflow_totals(workflow_id)


async def steps_for_workflow(workflow_id: str, store: LedgerStore | None = None) -> list[StepStats]:
    """One row per step and model of a workflow, in order of first use.

    Example::

        for row in await stats.steps_for_workflow("wf-1"):
            print(row.step, row.model, row.calls, row.cost_usd)
    """
    async with _using(store) as s:
        return await s.steps_for_workflow(workflow_id)


async def cost_by_model(
    from_dt: datetime, to_dt: datetime, store: LedgerStore | None = None
) -> list[ModelCost]:
    """Per model, usage recorded in ``[from_dt, to_dt)`` (timezone-aware), costliest first.

    Example::

        await stats.cost_by_model(datetime(2025, 6, 1, tzinfo=UTC),
                                  datetime(2025, 7, 1, tzinfo=UTC))
    """
    async with _using(store) as s:
        return await s.cost_by_model(from_dt, to_dt)


# --------------------------------------------------------------------------- formatting

UNPRICED = "unpriced"


def format_cost(cost: Decimal | None) -> str:
    """``$0.012346`` (6 places), ``<$0.000001`` for a positive dust amount, or "unpriced".

    Example::

        format_cost(Decimal("0.0123456")) == "$0.012346"
        format_cost(None) == "unpriced"
    """
    if cost is None:
        return UNPRICED
    shown = cost.quantize(Decimal("0.000001"))
    if shown == 0 and cost > 0:
        return "<$0.000001"
    return f"${shown:,.6f}"


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> str:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned."""
    rows = [[shown(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


# Why a lost reply's numbers are not the call's: said wherever they are counted.
LOST_NOTE = (
    " (request sent, reply never recorded: worker stopped, attempt cancelled or timed out;"
    " billed if it reached the provider, which is not known; input estimated, output"
    " unknown, unpriced)"
)
UNKNOWN_NOTE = (
    " (billed replies without believable usage: tokens not counted above, unpriced;"
    " reasons in the rows' price_note)"
)


def format_totals(totals: WorkflowTotals) -> str:
    """A two-column table of one workflow's totals.

    Example output::

        workflow            wf-1
        calls               12
        ...
        cost_usd            $0.012346
    """
    if totals.calls == 0:
        return f"no LLM usage recorded for workflow {totals.workflow_id}"
    # "unpriced" only when nothing was priced; a partial sum says how much is missing.
    if totals.unpriced_calls == totals.calls:
        cost = UNPRICED
    else:
        cost = format_cost(totals.cost_usd)
        if totals.unpriced_calls:
            cost += f" (+{totals.unpriced_calls} unpriced)"
    rows = [
        ("workflow", totals.workflow_id),
        # The ledger knows only the steps that called a model (a parse step makes none).
        ("steps with LLM calls", _n(totals.steps)),
        ("attempts", _n(totals.attempts)),
        ("calls", _n(totals.calls)),
        ("failed-attempt calls", _n(totals.failed_calls)),
        ("lost replies", _n(totals.lost_replies) + (LOST_NOTE if totals.lost_replies else "")),
        (
            "usage unknown",
            _n(totals.usage_unknown_calls) + (UNKNOWN_NOTE if totals.usage_unknown_calls else ""),
        ),
        ("in flight / orphaned", _n(totals.pending_calls)),
        ("input tokens", _n(totals.input_tokens)),
        ("  cache read", _n(totals.cache_read_tokens)),
        ("  cache write", _n(totals.cache_write_tokens)),
        ("output tokens", _n(totals.output_tokens)),
        ("  reasoning", _n(totals.reasoning_tokens)),
        ("web searches", _n(totals.web_search_requests)),
        ("unpriced calls", _n(totals.unpriced_calls)),
        ("cost (USD)", cost),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {shown(v)}" for k, v in rows)


_TOKEN_HEADERS = ("input", "cache read", "cache write", "output", "reasoning")


def _token_cells(row: StepStats | ModelCost) -> list[str]:
    return [
        _n(row.input_tokens),
        _n(row.cache_read_tokens),
        _n(row.cache_write_tokens),
        _n(row.output_tokens),
        _n(row.reasoning_tokens),
    ]


def format_steps(steps: Sequence[StepStats]) -> str:
    """A table with one line per step and model of a workflow.

    Example output::

        step       model   calls  attempts  input  cache read  ...  cost
        ---------  ------  -----  --------  -----  ----------  ...  ---------
        summarize  gpt-4o      2         2  1,800           0  ...  $0.006100
    """
    if not steps:
        return "no LLM usage recorded"
    lost = any(s.lost_replies for s in steps)
    unknown = any(s.usage_unknown_calls for s in steps)
    headers = ["step", "model", "calls", "attempts", *_TOKEN_HEADERS, "avg ms", "unpriced", "cost"]
    if unknown:
        headers.insert(3, "usage unknown")
    if lost:
        headers.insert(3, "lost replies")
    rows = []
    for s in steps:
        row = [
            s.step,
            s.model,
            _n(s.calls),
            _n(s.attempts),
            *_token_cells(s),
            _n(s.avg_latency_ms),
            _n(s.unpriced_calls),
            format_cost(s.cost_usd),
        ]
        if unknown:
            row.insert(3, _n(s.usage_unknown_calls))
        if lost:
            row.insert(3, _n(s.lost_replies))
        rows.append(row)
    table = _table(headers, rows, left=2)
    notes = ("\nlost replies:" + LOST_NOTE if lost else "") + (
        "\nusage unknown:" + UNKNOWN_NOTE if unknown else ""
    )
    return table + notes


def combine_costs(model: str, rows: Sequence[StepStats | ModelCost]) -> ModelCost:
    """One ``ModelCost`` adding up ``rows`` (per-step or per-model); cost stays None
    (unpriced) only when no row was priced.

    Example::

        total = stats.combine_costs("total", await stats.cost_by_model(start, end))
    """
    priced = [r.cost_usd for r in rows if r.cost_usd is not None]
    return ModelCost(
        model=model,
        calls=sum(r.calls for r in rows),
        input_tokens=sum(r.input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cache_read_tokens=sum(r.cache_read_tokens for r in rows),
        cache_write_tokens=sum(r.cache_write_tokens for r in rows),
        reasoning_tokens=sum(r.reasoning_tokens for r in rows),
        cost_usd=sum(priced, Decimal(0)) if priced else None,
        unpriced_calls=sum(r.unpriced_calls for r in rows),
    )


def format_cost_by_model(rows: Sequence[ModelCost]) -> str:
    """A table with one line per model and a total line.

    Example output::

        model     calls  input  ...  unpriced  cost
        --------  -----  -----  ...  --------  ---------
        gpt-4o        3  2,700  ...         0  $0.009150
        my-llama      1    100  ...         1  unpriced
        total         4  2,800  ...         1  $0.009150
    """
    if not rows:
        return "no LLM usage recorded in this period"
    headers = ["model", "calls", *_TOKEN_HEADERS, "unpriced", "cost"]
    body = [
        [m.model, _n(m.calls), *_token_cells(m), _n(m.unpriced_calls), format_cost(m.cost_usd)]
        for m in rows
    ]
    total = combine_costs("total", rows)
    body.append(
        [
            total.model,
            _n(total.calls),
            *_token_cells(total),
            _n(total.unpriced_calls),
            format_cost(total.cost_usd),
        ]
    )
    return _table(headers, body, left=1)
