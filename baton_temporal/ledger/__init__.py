"""The usage/cost ledger: one row per LLM call per step attempt, in SQL.

Example::

    from baton_temporal.ledger import LedgerStore, UsageRecord

    async with LedgerStore.from_url("postgresql://baton@db/baton") as store:
        await store.migrate()                      # once per database (baton db upgrade)
        await store.record(records)                # idempotent; priced at the call's time
        print(await store.workflow_totals("wf-1"))

See :mod:`baton_temporal.stats` for the query functions and text formatting, and
:mod:`baton_temporal.pricing` for pricers.
"""

from ._store import (
    LEDGER_URL_ENV,
    CallIntent,
    DebugLogEntry,
    LedgerConfigError,
    LedgerError,
    LedgerNotMigrated,
    LedgerStore,
    LedgerUnavailable,
    LedgerWriteError,
    ModelCost,
    PruneResult,
    ReconcileResult,
    RepriceResult,
    StepStats,
    UsageRecord,
    WorkflowTotals,
    default_ledger_url,
    safe_url,
)

__all__ = [
    "LEDGER_URL_ENV",
    "CallIntent",
    "DebugLogEntry",
    "LedgerConfigError",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerStore",
    "LedgerUnavailable",
    "LedgerWriteError",
    "ModelCost",
    "PruneResult",
    "ReconcileResult",
    "RepriceResult",
    "StepStats",
    "UsageRecord",
    "WorkflowTotals",
    "default_ledger_url",
    "safe_url",
]
