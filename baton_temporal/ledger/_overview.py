"""The ledger's reads for overviews (the cost page): cost of many workflows at once, and
cost by model over time in buckets.

Example::

    costs = await store.costs_for_workflows(["wf-1", "wf-2"])
    costs["wf-1"].cost_usd
    series = await store.cost_over_time(start, end, bucket=timedelta(hours=1))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import BigInteger, Integer, Table, case, func, select
from sqlalchemy import cast as sql_cast

from ._core import StoreCore
from ._queries import _require_aware
from ._records import _Frozen
from ._schema import StepStat

__all__ = ["CostPoint", "LedgerOverview", "WorkflowCost"]

_T = cast(Table, StepStat.__table__)
# One IN (...) list at most this long: SQLite's default limit of bound variables is 999.
_IDS_PER_QUERY = 500


class WorkflowCost(_Frozen):
    """What one workflow cost: ``cost_usd`` sums its priced calls (None: none priced)."""

    workflow_id: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int


class CostPoint(_Frozen):
    """Cost of one model in the bucket that starts at ``start``."""

    start: datetime
    model: str
    calls: int
    cost_usd: Decimal | None
    unpriced_calls: int


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


_UNPRICED = func.coalesce(func.sum(case((_T.c.cost_usd.is_(None), 1), else_=0)), 0)


class LedgerOverview(StoreCore):
    """Reads for overviews; part of :class:`~baton_temporal.ledger.LedgerStore`."""

    async def costs_for_workflows(self, workflow_ids: Sequence[str]) -> dict[str, WorkflowCost]:
        """Per workflow id, its calls, tokens and cost; ids without usage are left out."""
        out: dict[str, WorkflowCost] = {}
        ids = list(dict.fromkeys(workflow_ids))
        async with self._connect(write=False) as conn:
            for i in range(0, len(ids), _IDS_PER_QUERY):
                stmt = (
                    select(
                        _T.c.workflow_id,
                        func.count(),
                        func.coalesce(func.sum(_T.c.input_tokens), 0),
                        func.coalesce(func.sum(_T.c.output_tokens), 0),
                        func.sum(_T.c.cost_usd),
                        _UNPRICED,
                    )
                    .where(_T.c.workflow_id.in_(ids[i : i + _IDS_PER_QUERY]))
                    .group_by(_T.c.workflow_id)
                )
                for r in (await conn.execute(stmt)).all():
                    out[r[0]] = WorkflowCost(
                        workflow_id=r[0],
                        calls=_int(r[1]),
                        input_tokens=_int(r[2]),
                        output_tokens=_int(r[3]),
                        cost_usd=r[4],
                        unpriced_calls=_int(r[5]),
                    )
        return out

    async def cost_over_time(
        self, from_dt: datetime, to_dt: datetime, *, bucket: timedelta
    ) -> list[CostPoint]:
        """Cost per model in buckets of ``bucket`` from ``from_dt`` (aware) to ``to_dt``,
        oldest first. Buckets without usage are left out."""
        _require_aware(from_dt, "from_dt")
        _require_aware(to_dt, "to_dt")
        seconds = int(bucket.total_seconds())
        if seconds < 1:
            raise ValueError(f"bucket must be at least one second, got {bucket}")
        origin = int(from_dt.timestamp())
        if self.dialect == "sqlite":
            # Stored as naive UTC text: strftime('%s') reads it as UTC seconds.
            epoch: Any = sql_cast(func.strftime("%s", _T.c.recorded_at), Integer)
        else:
            epoch = sql_cast(func.floor(func.extract("epoch", _T.c.recorded_at)), BigInteger)
        # Floor division (SQLAlchemy 2's "/" is true division: a cast to integer would
        # round 59.9 minutes into the next hour's bucket).
        index = sql_cast((epoch - origin) // seconds, Integer).label("bucket")
        stmt = (
            select(index, _T.c.model, func.count(), func.sum(_T.c.cost_usd), _UNPRICED)
            .where(_T.c.recorded_at >= from_dt, _T.c.recorded_at < to_dt)
            .group_by(index, _T.c.model)
            .order_by(index, _T.c.model)
        )
        async with self._connect(write=False) as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            CostPoint(
                start=datetime.fromtimestamp(origin + _int(r[0]) * seconds, UTC),
                model=r[1],
                calls=_int(r[2]),
                cost_usd=r[3],
                unpriced_calls=_int(r[4]),
            )
            for r in rows
        ]
