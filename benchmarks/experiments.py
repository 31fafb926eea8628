"""Candidate optimisations, tried in the benchmark's worker processes only.

``BATON_BENCH_EXPERIMENTS=group_commit,no_preping python -m benchmarks.run ...`` patches
them into every worker; nothing here changes the library. Results of trying them are in
``benchmarks/README.md``.

* ``group_commit`` - ``LedgerStore.record`` calls that arrive while a write is in flight
  are combined into one INSERT (each caller still waits for its own rows to be stored).
* ``no_preping``   - the ledger engine without ``pool_pre_ping`` (one round trip less per
  write; a stale connection then fails one write, which is deferred to the workflow).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

ENV = "BATON_BENCH_EXPERIMENTS"


def enabled() -> list[str]:
    return [x for x in os.environ.get(ENV, "").split(",") if x]


def apply() -> list[str]:
    names = enabled()
    for name in names:
        {
            "group_commit": _group_commit,
            "no_preping": _no_preping,
            "no_heartbeat_timeout": _no_heartbeat_timeout,
        }[name]()
    return names


def _no_heartbeat_timeout() -> None:
    import baton_temporal._runtime as runtime

    runtime.DEFAULT_HEARTBEAT_TIMEOUT = None  # type: ignore[assignment]


def _no_preping() -> None:
    from baton_temporal.ledger import LedgerStore

    original = LedgerStore.from_url.__func__  # type: ignore[attr-defined]

    def from_url(cls: Any, url: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("pool_pre_ping", False)
        return original(cls, url, **kwargs)

    LedgerStore.from_url = classmethod(from_url)  # type: ignore[method-assign,assignment]


def _group_commit() -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from baton_temporal.ledger import LedgerStore, UsageRecord
    from baton_temporal.ledger._store import _T

    async def insert_rows(store: Any, rows: list[dict[str, Any]]) -> set[str]:
        insert = pg_insert if store.dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(_T)
            .on_conflict_do_nothing(index_elements=[_T.c.call_key])
            .returning(_T.c.call_key)
        )
        async with store._connect(write=True, autocommit=True) as conn:
            result = await conn.execute(stmt, rows)
            return {r[0] for r in result.all()}

    async def flush(store: Any) -> None:
        try:
            while store._gc_queue:
                batch, store._gc_queue = store._gc_queue, []
                rows = list({v["call_key"]: v for values, _ in batch for v in values}.values())
                try:
                    new = await insert_rows(store, rows)
                except BaseException as err:
                    for _, fut in batch:
                        if not fut.done():
                            if isinstance(err, asyncio.CancelledError):
                                fut.cancel()
                            else:
                                fut.set_exception(err)
                    if isinstance(err, asyncio.CancelledError):
                        raise
                    continue
                for values, fut in batch:
                    if not fut.done():
                        fut.set_result(sum(1 for v in values if v["call_key"] in new))
        finally:
            store._gc_flushing = False

    async def record(self: Any, rows: Any) -> int:
        from collections.abc import Mapping

        if isinstance(rows, UsageRecord | Mapping):
            rows = [rows]
        records = [r if isinstance(r, UsageRecord) else UsageRecord.model_validate(r) for r in rows]
        if not records:
            return 0
        values = list(
            {v["call_key"]: v for v in (self._row(r, self._pricer) for r in records)}.values()
        )
        loop = asyncio.get_running_loop()
        if getattr(self, "_gc_loop", None) is not loop:
            self._gc_loop, self._gc_queue, self._gc_flushing = loop, [], False
        fut: asyncio.Future[int] = loop.create_future()
        self._gc_queue.append((values, fut))
        if not self._gc_flushing:
            self._gc_flushing = True
            self._gc_task = loop.create_task(flush(self))
        return await fut

    LedgerStore.record = record  # type: ignore[method-assign]
