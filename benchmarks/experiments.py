"""Candidate optimisations, tried in the benchmark's worker processes only.

``BATON_BENCH_EXPERIMENTS=no_heartbeat_timeout,no_preping python -m benchmarks.run``
patches them into every worker; nothing here changes the library. Results of trying them are in
``benchmarks/README.md``.

* ``no_heartbeat_timeout`` - steps scheduled without the default heartbeat timeout.
* ``no_summary``   - steps scheduled without a summary (the step name shown by the UI).
* ``no_sql``       - ledger writes priced and batched but never sent to the database
  (to split a write's cost between the database and the rest).
* ``no_preping``   - the ledger engine without ``pool_pre_ping`` (one round trip less per
  pool checkout: reads, and the writer connection when it is reopened).
"""

from __future__ import annotations

import os
from typing import Any

ENV = "BATON_BENCH_EXPERIMENTS"


def enabled() -> list[str]:
    return [x for x in os.environ.get(ENV, "").split(",") if x]


def apply() -> list[str]:
    names = enabled()
    for name in names:
        {
            "no_preping": _no_preping,
            "no_heartbeat_timeout": _no_heartbeat_timeout,
            "no_summary": _no_summary,
            "no_sql": _no_sql,
        }[name]()
    return names


def _no_heartbeat_timeout() -> None:
    import baton_temporal.workflow._runtime as runtime

    runtime.DEFAULT_HEARTBEAT_TIMEOUT = None  # type: ignore[assignment]


def _no_summary() -> None:
    import baton_temporal.workflow._runtime as runtime

    execute = runtime._execute

    async def without_summary(*args: Any) -> Any:
        return await execute(*args[:-1], None)

    runtime._execute = without_summary  # type: ignore[assignment]


def _no_sql() -> None:
    from baton_temporal.ledger import LedgerStore

    async def insert(self: Any, values: list[dict[str, Any]]) -> set[str]:
        return {v["call_key"] for v in values}

    LedgerStore._insert = insert  # type: ignore[method-assign]


def _no_preping() -> None:
    from baton_temporal.ledger import LedgerStore

    original = LedgerStore.from_url.__func__  # type: ignore[attr-defined]

    def from_url(cls: Any, url: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("pool_pre_ping", False)
        return original(cls, url, **kwargs)

    LedgerStore.from_url = classmethod(from_url)  # type: ignore[method-assign,assignment]
