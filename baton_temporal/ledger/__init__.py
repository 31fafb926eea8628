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

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._errors import (
    LedgerConfigError,
    LedgerError,
    LedgerNotMigrated,
    LedgerUnavailable,
    LedgerWriteError,
)
from ._records import (
    CallIntent,
    DebugLogEntry,
    ModelCost,
    PruneResult,
    ReconcileResult,
    RepriceResult,
    StepStats,
    UsageRecord,
    WorkflowTotals,
)

if TYPE_CHECKING:
    from ._config import safe_url
    from ._errors import LEDGER_URL_ENV
    from ._store import LedgerStore
    from ._urls import default_ledger_url

# The store and its URL handling load SQLAlchemy (~0.4 s): a worker's usage accounting
# needs only the errors and records above until the ledger is opened.
_LAZY = {
    "LedgerStore": "._store",
    "LEDGER_URL_ENV": "._errors",
    "default_ledger_url": "._urls",
    "safe_url": "._config",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


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
