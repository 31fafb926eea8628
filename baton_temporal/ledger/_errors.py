"""The ledger's errors. Kept apart from the store, which loads SQLAlchemy: a worker's
usage accounting catches them without paying for that import until the ledger opens.

Example::

    from baton_temporal.ledger import LedgerUnavailable

    try:
        await store.record(records)
    except LedgerUnavailable:
        ...  # keep the records and write them later
"""

from __future__ import annotations

__all__ = [
    "LedgerConfigError",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerUnavailable",
    "LedgerWriteError",
]


class LedgerError(Exception):
    """Base class of the ledger's own errors."""


class LedgerConfigError(LedgerError, ValueError):
    """The ledger URL or settings are invalid; no retry can fix it."""


class LedgerUnavailable(LedgerError):
    """The ledger database cannot be reached right now (down, restarting, locked).

    Retryable: the write is idempotent, so the same records can be sent again later.
    """


class LedgerNotMigrated(LedgerError):
    """The ledger database exists but its tables are missing or out of date."""


class LedgerWriteError(LedgerError):
    """The database is reachable but refused the write (a bad value, a broken schema).

    Not retryable: sending the same rows again gives the same answer. The message names
    the problem; the step's result is kept, and the rows stay in the step's output.
    """
