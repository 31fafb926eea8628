"""The worker's health endpoint: liveness and readiness over plain HTTP.

``GET /livez``   200 while the worker's event loop answers. A worker busy in long LLM calls
                 stays live (the calls are awaited, the loop keeps answering), so a liveness
                 probe never cuts a running step. (A worker that fails for good ends the
                 process: Temporal's Worker raises its fatal error out of run_worker.)
``GET /readyz``  200 when the worker is connected to Temporal and polling its task queue
                 (this worker's identity is among the queue's pollers), and the ledger's
                 state is known: reachable, or down with usage being deferred to Temporal
                 (``"ledger": "down"`` in the body; nothing is lost meanwhile). 503
                 otherwise, and from the moment a shutdown starts (the worker is draining).

Both answer with a JSON body saying why. The checks run in the background every
``interval`` seconds, so a probe never waits on Temporal or the database.

Example::

    async with HealthServer(port=8081, check=my_check):   # my_check() -> HealthReport
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Self

__all__ = ["HealthReport", "HealthServer", "WorkerHealth"]

log = logging.getLogger("baton_temporal.health")


@dataclass(frozen=True)
class HealthReport:
    """One round of checks."""

    temporal: str  # "ok", "not polling yet", or the error
    ledger: str  # "ok", "down ...", "not checked yet", "not started yet", "disabled"
    draining: bool = False
    checked_at: float = field(default_factory=time.time)
    counters: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        ledger_known = self.ledger not in ("not checked yet", "not started yet")
        return not self.draining and self.temporal == "ok" and ledger_known


class WorkerHealth:
    """The checks behind the endpoint, for one running worker.

    ``client``/``task_queue``/``identity`` say where to look for this worker's pollers;
    ``resources`` returns the running worker's resources (None until the worker has
    opened them; their ``store`` is None when the worker keeps no ledger).
    """

    def __init__(
        self,
        client: Any,
        task_queue: str,
        identity: str,
        resources: Callable[[], Any],
        *,
        timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._identity = identity
        self._resources = resources
        self._timeout = timeout
        self.draining = False

    async def _temporal(self) -> str:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        try:
            found = set()
            for kind in (
                TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ):
                reply = await self._client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self._client.namespace,
                        task_queue=TaskQueue(name=self._task_queue),
                        task_queue_type=kind,
                    ),
                    timeout=_td(self._timeout),
                )
                if any(p.identity == self._identity for p in reply.pollers):
                    found.add(kind)
        except Exception as err:
            return f"unreachable: {' '.join(str(err).split())[:300]}"
        if len(found) < 2:
            return "not polling yet"
        return "ok"

    async def _ledger(self) -> str:
        from .metrics import ledger_counters

        resources = self._resources()
        if resources is None:
            return "not started yet"
        store = resources.store
        if store is None:
            return "disabled"
        try:
            await asyncio.wait_for(store.check_schema(), self._timeout)
        except Exception as err:  # LedgerUnavailable, LedgerNotMigrated, a timeout
            ledger_counters().set_up(False)
            text = " ".join(str(err).split()) or type(err).__name__
            return f"down (usage is deferred to Temporal until it is back): {text[:300]}"
        ledger_counters().set_up(True)
        return "ok"

    async def check(self) -> HealthReport:
        from .metrics import ledger_counters

        temporal, ledger = await asyncio.gather(self._temporal(), self._ledger())
        return HealthReport(
            temporal=temporal,
            ledger=ledger,
            draining=self.draining,
            counters=ledger_counters().snapshot(),
        )


def _td(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


class HealthServer:
    """Serves ``/livez`` and ``/readyz`` on ``host:port`` from a background check loop."""

    def __init__(
        self,
        port: int,
        check: Callable[[], Awaitable[HealthReport]],
        *,
        host: str = "0.0.0.0",
        interval: float = 5.0,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.port = port
        self.host = host
        self._check = check
        self._interval = interval
        self._draining = draining
        self._report = HealthReport(temporal="not checked yet", ledger="not checked yet")
        self._server: asyncio.Server | None = None
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def report(self) -> HealthReport:
        return self._report

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as err:
            raise ValueError(
                f"cannot serve the health endpoint on port {self.port} ({err.strerror}); "
                "set BATON_HEALTH_PORT (or --health-port) to a free port"
            ) from None
        if self.port == 0:  # tests: the port the OS chose
            self.port = self._server.sockets[0].getsockname()[1]
        self._loop_task = asyncio.create_task(self._run_checks())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run_checks(self) -> None:
        while True:
            try:
                self._report = await self._check()
            except Exception:  # a bug in a check must not take the endpoint down
                log.exception("health check failed")
            # Every second until ready, so a starting pod turns ready without delay.
            await asyncio.sleep(self._interval if self._report.ready else 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            report = self._report
            draining = self._draining() or report.draining
            body: dict[str, Any] = {**asdict(report), "draining": draining}
            if path in ("/livez", "/healthz"):
                ok = True  # answering at all is the proof: the event loop is not stuck
            elif path == "/readyz":
                ok = report.ready and not draining
            else:
                ok, body = False, {"error": "not found; try /livez or /readyz"}
            status = "200 OK" if ok else ("404 Not Found" if "error" in body else "503 Unavailable")
            payload = json.dumps({"ok": ok, **body}).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except Exception:  # a slow, broken or hostile client: drop it, keep serving
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
