"""Group commit for ledger inserts: writes that arrive together go in one statement.

A busy worker finishes many LLM calls at once, and each insert costs ~1 ms of worker CPU
in the database layer whatever its size. Rows submitted while a statement is in flight
wait for it, then go together in the next one; each caller still returns only once its
own rows are stored (or raises), so nothing is acknowledged before it is durable.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Row = dict[str, Any]
InsertRows = Callable[[list[Row]], Awaitable[set[str]]]

# Rows per statement: ~20 columns each stays far below PostgreSQL's 65,535 and SQLite's
# 32,766 bound parameters.
MAX_BATCH_ROWS = 500


class InsertBatcher:
    """Combines concurrent :meth:`submit` calls into as few ``insert`` calls as possible.

    ``insert`` writes rows idempotently (keyed by ``call_key``) and returns the keys that
    were new. Example::

        batcher = InsertBatcher(store_rows)
        new = await batcher.submit([{"call_key": "k1", ...}])   # -> 1
    """

    def __init__(self, insert: InsertRows, *, is_outage: Callable[[BaseException], bool]) -> None:
        self._insert = insert
        self._is_outage = is_outage
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[list[Row], asyncio.Future[int]]] = deque()
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, rows: list[Row]) -> int:
        """Store ``rows``; return how many of them were new. Raises what the insert raised."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A store used from a new event loop (tests, asyncio.run twice): nothing queued
            # on the old one can be waited for from here.
            self._loop, self._queue, self._draining = loop, deque(), None
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append((rows, future))
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain())
        # A cancelled caller does not stop the write: its rows may still be stored, and
        # the caller keeps them as pending (rows are idempotent, so a second write is safe).
        return await future

    async def submit_all(self, rows: list[Row], *, per_statement: int) -> int:
        """:meth:`submit` for any number of rows, at most ``per_statement`` at a time."""
        if len(rows) <= per_statement:
            return await self.submit(rows)
        total = 0
        for start in range(0, len(rows), per_statement):
            total += await self.submit(rows[start : start + per_statement])
        return total

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._write(self._take())
        except BaseException as err:
            # Only cancellation of the drain itself (the loop closing) gets here; no
            # waiter may be left hanging.
            for _, future in self._queue:
                if future.done():
                    continue
                if isinstance(err, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(err)
            self._queue.clear()
            raise

    def _take(self) -> list[tuple[list[Row], asyncio.Future[int]]]:
        batch: list[tuple[list[Row], asyncio.Future[int]]] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_BATCH_ROWS):
            item = self._queue.popleft()
            batch.append(item)
            size += len(item[0])
        return batch

    async def _write(self, batch: list[tuple[list[Row], asyncio.Future[int]]]) -> None:
        live = [(rows, f) for rows, f in batch if not f.done()]
        if not live:
            return
        rows = list({r["call_key"]: r for part, _ in live for r in part}.values())
        try:
            new = await self._insert(rows)
        except asyncio.CancelledError:
            for _, future in live:
                future.cancel()
            raise
        except Exception as err:
            if len(live) > 1 and not self._is_outage(err):
                # One caller's bad row must not fail the others' rows: write each alone.
                for part, future in live:
                    await self._write([(part, future)])
                return
            for _, future in live:
                if not future.done():
                    future.set_exception(err)
            return
        # A key submitted twice in one batch is new for the first submitter only.
        unclaimed = set(new)
        for part, future in live:
            mine = {r["call_key"] for r in part} & unclaimed
            unclaimed -= mine
            if not future.done():
                future.set_result(len(mine))
