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
    "LEDGER_URL_ENV",
    "LedgerConfigError",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerUnavailable",
    "LedgerWriteError",
    "not_migrated",
    "refused",
    "unavailable",
]

LEDGER_URL_ENV = "BATON_LEDGER_URL"

# PostgreSQL SQLSTATEs that mean "cannot reach or use the server right now": class 08
# (connection exceptions), 57P01-57P03 (shutting down, cannot connect now), 53300 (too
# many connections), 40001/40P01 (serialization failure, deadlock), 55P03/57014 (a lock
# not granted in time, a statement timeout): a retry can succeed.
# 25006: the database turned read-only (a failover to a standby, maintenance); class 53:
# out of disk, memory or connections. Both pass; refusing would drop the usage for good.
PG_TRANSIENT = (
    "57P01",
    "57P02",
    "57P03",
    "53000",
    "53100",
    "53200",
    "53300",
    "53400",
    "25006",
    "40001",
    "40P01",
    "55P03",
    "57014",
)
# Driver errors without a SQLSTATE that are the statement's fault, not the connection's.
STATEMENT_FAULTS = ("number of parameters", "too many sql variables", "too many terms")

_FIX_MIGRATE = "run `baton db upgrade` (or `await store.migrate()`) against it"


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


# The messages, shared by both writers (the SQLAlchemy store and the worker's light
# PostgreSQL writer), so that the same failure reads the same and names the same fix.


def not_migrated(url: str, text: str) -> LedgerNotMigrated:
    """A table or column the ledger writes to is missing."""
    return LedgerNotMigrated(
        f"the ledger tables in {url} are missing or out of date ({text}); {_FIX_MIGRATE}"
    )


def unavailable(url: str, text: str) -> LedgerUnavailable:
    """The database cannot be reached (refused, dropped, timed out, shutting down)."""
    return LedgerUnavailable(
        f"the ledger database {url} is unavailable: {text}. Check that it is "
        f"running and reachable from this host, or set {LEDGER_URL_ENV} to the "
        "right database; writes are idempotent and can be retried"
    )


def refused(url: str, text: str) -> LedgerWriteError:
    """The database answered and refused the write: no retry can help."""
    return LedgerWriteError(
        f"the ledger database {url} refused the write: {text}. The database "
        "is reachable, so retrying cannot help; this is a bug or a value out of "
        "range: report it with this message (the step's result is kept)"
    )
