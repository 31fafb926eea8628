"""The ledger's read side: totals per workflow, stats per step and model, cost per model.

Example::

    totals = await store.workflow_totals("wf-1")
    totals.calls, totals.cost_usd, totals.lost_replies
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, case, distinct, func, select

from ._core import StoreCore
from ._records import DebugLogEntry, ModelCost, StepStats, WorkflowTotals
from ._schema import DebugLog, StepStat

__all__ = ["LedgerQueries"]

_T = cast(Table, StepStat.__table__)
_D = cast(Table, DebugLog.__table__)


def _int(value: Any) -> int:
    # SUM(bigint) is NUMERIC on PostgreSQL (Decimal here), INTEGER on SQLite, NULL if no rows
    return 0 if value is None else int(value)


def _token_sums() -> list[Any]:
    return [
        func.coalesce(func.sum(_T.c.input_tokens), 0),
        func.coalesce(func.sum(_T.c.output_tokens), 0),
        func.coalesce(func.sum(_T.c.cache_read_tokens), 0),
        func.coalesce(func.sum(_T.c.cache_write_tokens), 0),
        func.coalesce(func.sum(_T.c.reasoning_tokens), 0),
    ]


def _tokens(row: Sequence[Any], start: int) -> dict[str, int]:
    keys = (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    return {k: _int(row[start + i]) for i, k in enumerate(keys)}


_UNPRICED = func.coalesce(func.sum(case((_T.c.cost_usd.is_(None), 1), else_=0)), 0)
_FAILED = func.coalesce(func.sum(case((_T.c.status == "step_failed", 1), else_=0)), 0)
_LOST = func.coalesce(func.sum(case((_T.c.status == "lost_reply", 1), else_=0)), 0)
_UNKNOWN = func.coalesce(func.sum(case((_T.c.status == "usage_unknown", 1), else_=0)), 0)
_PENDING = func.coalesce(func.sum(case((_T.c.status == "pending", 1), else_=0)), 0)


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime(2025, 1, 1, tzinfo=UTC)")
    return value


class LedgerQueries(StoreCore):
    """The read half of :class:`~baton_temporal.ledger.LedgerStore`."""

    async def workflow_totals(self, workflow_id: str) -> WorkflowTotals:
        """Token and cost totals of a workflow over all its runs and attempts.

        A workflow with no recorded usage gives all zeros (``calls == 0``).
        """
        where = _T.c.workflow_id == workflow_id
        totals = select(
            func.count(),
            *_token_sums(),
            func.sum(_T.c.cost_usd),
            _UNPRICED,
            _FAILED,
            func.count(distinct(_T.c.step)),
            _LOST,
            _PENDING,
            func.coalesce(func.sum(_T.c.web_search_requests), 0),
            _UNKNOWN,
        ).where(where)
        # Portable COUNT(DISTINCT (a, b, c)): SQLite has no row-value DISTINCT.
        attempt_keys = (
            select(_T.c.run_id, _T.c.step, _T.c.activity_id, _T.c.attempt)
            .where(where)
            .distinct()
            .subquery()
        )
        attempts = select(func.count()).select_from(attempt_keys)
        async with self._connect(write=False) as conn:
            row = (await conn.execute(totals)).one()
            n_attempts = (await conn.execute(attempts)).scalar_one()
        return WorkflowTotals(
            workflow_id=workflow_id,
            calls=_int(row[0]),
            **_tokens(row, 1),
            cost_usd=row[6] if row[6] is not None else Decimal(0),
            unpriced_calls=_int(row[7]),
            failed_calls=_int(row[8]),
            lost_replies=_int(row[10]),
            pending_calls=_int(row[11]),
            web_search_requests=_int(row[12]),
            usage_unknown_calls=_int(row[13]),
            steps=_int(row[9]),
            attempts=_int(n_attempts),
        )

    async def steps_for_workflow(self, workflow_id: str) -> list[StepStats]:
        """Per step and model: calls, attempts, tokens, cost; in order of first use."""
        keys = (
            select(_T.c.step, _T.c.model, _T.c.run_id, _T.c.activity_id, _T.c.attempt)
            .where(_T.c.workflow_id == workflow_id)
            .distinct()
            .subquery()
        )
        attempt_keys = select(keys.c.step, keys.c.model, func.count()).group_by(
            keys.c.step, keys.c.model
        )
        first = func.min(_T.c.recorded_at)
        stmt = (
            select(
                _T.c.step,
                _T.c.model,
                func.count(),
                *_token_sums(),
                func.sum(_T.c.cost_usd),
                _UNPRICED,
                _FAILED,
                func.avg(_T.c.latency_ms),
                first,
                func.max(_T.c.recorded_at),
                _LOST,
                _PENDING,
                _UNKNOWN,
            )
            .where(_T.c.workflow_id == workflow_id)
            .group_by(_T.c.step, _T.c.model)
            .order_by(first, _T.c.step, _T.c.model)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).all()
            attempts = {(s, m): n for s, m, n in (await conn.execute(attempt_keys)).all()}
        return [
            StepStats(
                step=r[0],
                model=r[1],
                calls=_int(r[2]),
                attempts=_int(attempts.get((r[0], r[1]))),
                **_tokens(r, 3),
                cost_usd=r[8],
                unpriced_calls=_int(r[9]),
                failed_calls=_int(r[10]),
                avg_latency_ms=None if r[11] is None else round(float(r[11])),
                lost_replies=_int(r[14]),
                pending_calls=_int(r[15]),
                usage_unknown_calls=_int(r[16]),
                first_recorded_at=r[12],
                last_recorded_at=r[13],
            )
            for r in rows
        ]

    async def cost_by_model(self, from_dt: datetime, to_dt: datetime) -> list[ModelCost]:
        """Per model, the usage recorded in ``[from_dt, to_dt)``; costliest first.

        Both bounds must be timezone-aware.
        """
        _require_aware(from_dt, "from_dt")
        _require_aware(to_dt, "to_dt")
        stmt = (
            select(_T.c.model, func.count(), *_token_sums(), func.sum(_T.c.cost_usd), _UNPRICED)
            .where(_T.c.recorded_at >= from_dt, _T.c.recorded_at < to_dt)
            .group_by(_T.c.model)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).all()
        out = [
            ModelCost(
                model=r[0],
                calls=_int(r[1]),
                **_tokens(r, 2),
                cost_usd=r[7],
                unpriced_calls=_int(r[8]),
            )
            for r in rows
        ]
        # Costliest first; unpriced models last; ties by name, so output is stable.
        out.sort(key=lambda m: (m.cost_usd is None, -(m.cost_usd or 0), m.model))
        return out

    async def debug_logs(
        self, workflow_id: str, *, limit: int | None = None
    ) -> list[DebugLogEntry]:
        """The saved request/response pairs of a workflow, oldest first."""
        stmt = (
            select(_D)
            .where(_D.c.workflow_id == workflow_id)
            .order_by(_D.c.created_at, _D.c.id)
            .limit(limit)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [DebugLogEntry.model_validate(dict(r)) for r in rows]
