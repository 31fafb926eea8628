"""What runs beside a worker when the settings ask for it: the health endpoint, and the
first-version promotion of worker versioning. Kept out of worker.py so the worker's
main loop stays short.

Example::

    async with run_extras(settings, client, plugin) as extras, worker:
        await stop.wait()
        extras.draining = True      # readiness turns 503 while running steps finish
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["Extras", "run_extras", "versioning_options"]

log = logging.getLogger("baton_temporal.worker")


class Extras:
    """Handles of the running extras."""

    def __init__(self) -> None:
        self.draining = False
        self.health: Any = None  # HealthServer when the endpoint is on


def versioning_options(settings: Any) -> dict[str, Any]:
    """``Worker`` keyword arguments for worker versioning (none when it is off)."""
    if not settings.build_id:
        return {}
    from ._rollout import deployment_config

    name = settings.deployment_name or settings.task_queue
    return {"deployment_config": deployment_config(name, settings.build_id)}


async def _promote(client: Any, name: str, build_id: str) -> None:
    from ._rollout import promote_if_first

    # The version exists on the server once this worker has polled; try for a minute.
    for _ in range(60):
        try:
            await promote_if_first(client, name, build_id)
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.debug("promoting %s/%s not possible yet: %s", name, build_id, err)
        await asyncio.sleep(1)
    log.warning(
        "could not make %s/%s the current version; run `temporal worker deployment "
        "set-current-version --deployment-name %s --build-id %s`",
        name,
        build_id,
        name,
        build_id,
    )


@contextlib.asynccontextmanager
async def run_extras(settings: Any, client: Any, plugin: Any) -> AsyncIterator[Extras]:
    extras = Extras()
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as stack:
        if settings.health_port is not None:
            from .health import HealthServer, WorkerHealth

            checks = WorkerHealth(client, settings.task_queue, client.identity, plugin.resources)
            extras.health = await stack.enter_async_context(
                HealthServer(settings.health_port, checks.check, draining=lambda: extras.draining)
            )
            log.info("health endpoint on port %d (/livez, /readyz)", extras.health.port)
        if settings.build_id and settings.promote_first_version:
            name = settings.deployment_name or settings.task_queue
            tasks.append(asyncio.create_task(_promote(client, name, settings.build_id)))
        try:
            yield extras
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
