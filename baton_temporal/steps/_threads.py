"""The threads that plain-function (sync) steps run in, and the report of steps that
outlive their attempt.

A sync step runs in a thread so that it does not stall the worker's event loop. Python
cannot interrupt a thread: when the attempt times out (or is cancelled) Temporal moves
on, but the function keeps its thread until it returns. In asyncio's default pool
(``min(32, cpus + 4)`` threads, shared with everything else using ``to_thread``), a few
such steps starved every other sync step on the worker. So each worker gets its own pool,
sized from its activity slots (``max_concurrent_activities``, 100 unless set): every step
the worker may run at once has a thread, and a step still running after its attempt
ended is logged (and counted in :attr:`SyncStepThreads.overrunning`) so that the cause of
a busy pool is visible.

Example::

    threads = SyncStepThreads(max_threads=100)
    result = await threads.run(render_report, job, step="render")
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["DEFAULT_SYNC_STEP_THREADS", "SyncStepThreads"]

log = logging.getLogger("baton_temporal.steps")

# Temporal's default max_concurrent_activities.
DEFAULT_SYNC_STEP_THREADS = 100


class SyncStepThreads:
    """A worker's own thread pool for sync steps, with a report of overrunning steps."""

    def __init__(self, max_threads: int = DEFAULT_SYNC_STEP_THREADS) -> None:
        if not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"sync step threads must be a whole number >= 1, got {max_threads!r}")
        self.max_threads = max_threads
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="baton-sync-step")
        self._lock = threading.Lock()
        self._overrunning: set[Future[Any]] = set()

    def __repr__(self) -> str:
        return f"SyncStepThreads({self.max_threads} threads, {self.overrunning} overrunning)"

    @property
    def overrunning(self) -> int:
        """Steps still running in a thread although their attempt has ended."""
        with self._lock:
            return len(self._overrunning)

    async def run(
        self, fn: Callable[[Any], Any], job: Any, *, step: str, timeout: float | None = None
    ) -> Any:
        """Run ``fn(job)`` in a pool thread (with this task's context: activity.info()
        and heartbeats work there) and wait for it. A thread still running when the
        attempt is cancelled, or ``timeout`` seconds after it started (the attempt's
        start-to-close timeout, which the worker may learn of late), is reported."""
        context = contextvars.copy_context()
        future = self._pool.submit(context.run, fn, job)
        watchdog = None
        if timeout:
            loop = asyncio.get_running_loop()
            watchdog = loop.call_later(
                timeout, self._report_overrun, future, step, job, f"its {timeout:g} s timeout"
            )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.done() and not future.cancel():
                self._report_overrun(future, step, job, "its attempt was cancelled")
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _report_overrun(self, future: Future[Any], step: str, job: Any, why: str) -> None:
        if future.done():
            return
        with self._lock:
            if future in self._overrunning:
                return  # reported already (timeout first, then the cancellation)
            self._overrunning.add(future)
            count = len(self._overrunning)
        ended = time.monotonic()
        where = (
            f"workflow {getattr(job, 'workflow_id', '?')}, attempt {getattr(job, 'attempt', '?')}"
        )
        log.warning(
            "sync step %r (%s) is still running after %s: Python cannot stop a thread, so "
            "it keeps one of the %d sync-step threads until it returns (%d held so far); "
            "make the function return sooner, or make it async and await something that can "
            "be cancelled",
            step,
            where,
            why,
            self.max_threads,
            count,
        )

        def finished(_: Future[Any]) -> None:
            with self._lock:
                self._overrunning.discard(future)
            log.warning(
                "sync step %r (%s) returned %.1f s after its attempt ended; its result was "
                "discarded",
                step,
                where,
                time.monotonic() - ended,
            )

        future.add_done_callback(finished)

    def shutdown(self) -> None:
        """Stop taking work; threads still running finish on their own (not waited for)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
