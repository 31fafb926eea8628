"""``baton db upgrade --wait``: migrate once the database accepts connections.

A container started beside its database (compose, a pod's init container) often runs
before the database is up: the PostgreSQL image's first start runs an init server that
accepts no TCP connections, and a database in another pod may be restarting. Only
:class:`~baton_temporal.ledger.LedgerUnavailable` (cannot connect) is retried; a wrong URL,
password or schema fails at once, since waiting cannot fix it.

Example::

    await upgrade_when_reachable(store, timedelta(minutes=2))
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

__all__ = ["upgrade_when_reachable"]

log = logging.getLogger("baton_temporal.cli")

# Errors that mean "not up yet"; an authentication or missing-database error is final.
_NOT_YET = (
    "connection refused",
    "could not connect",
    "timeout",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "connection reset",
    "server closed the connection",
)


def _not_up_yet(err: BaseException) -> bool:
    text = str(err).lower()
    return any(sign in text for sign in _NOT_YET)


async def upgrade_when_reachable(store: Any, wait: timedelta | None) -> None:
    """``store.migrate()``, retried every second while the database is not up yet, for at
    most ``wait`` (no retry when None)."""
    from ..ledger import LedgerUnavailable

    deadline = time.monotonic() + (wait.total_seconds() if wait else 0.0)
    attempt = 0
    while True:
        attempt += 1
        try:
            await store.migrate()
            return
        except LedgerUnavailable as err:
            if not _not_up_yet(err):
                raise  # a wrong password or database: waiting cannot fix it
            if time.monotonic() >= deadline:
                if attempt > 1:
                    raise LedgerUnavailable(
                        f"{err} (still failing after {attempt} attempts over "
                        f"{wait}; raise --wait if the database needs longer to start)"
                    ) from err
                raise
            print(f"ledger not reachable yet (attempt {attempt}), retrying: {err}", flush=True)
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
