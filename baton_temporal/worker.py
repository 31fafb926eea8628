"""The production worker: connect from the environment, load step modules, run until
SIGTERM, let running steps finish.

Settings (environment, or the matching keyword arguments of :func:`run_worker`):

=============================== ==========================================================
``TEMPORAL_ADDRESS``            Temporal frontend, ``host:port`` (default localhost:7233)
``TEMPORAL_NAMESPACE``          namespace (default ``default``)
``TEMPORAL_API_KEY``            API key (Temporal Cloud); TLS is then on
``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE``, ``TEMPORAL_CONFIG_FILE``
                                TLS and profiles, as every Temporal SDK reads them
``BATON_STEPS``                 comma-separated modules (``myapp.steps``) or
                                ``module:attribute`` lists of steps to register
``BATON_TASK_QUEUE``            task queue (default ``baton``)
``BATON_GRACEFUL_SHUTDOWN_S``   on SIGTERM, how long running steps may take to finish
                                (default 300)
``BATON_MAX_CONCURRENT_STEPS``  steps one worker runs at once (default 100)
``BATON_UNREGISTERED_STEP_WAIT_S`` how long a flow waits for a worker that registers a step
                                this one lacks (a rolling deploy; default 600, 0: fail)
``BATON_CODEC_KEYS``            encrypt payloads in Temporal history (``id:base64key,...``,
                                newest last; see ``baton_temporal.codec``)
=============================== ==========================================================

Example::

    BATON_STEPS=baton_temporal.examples.seed python -m workers.worker
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from ._plugin import BatonPlugin
from .steps._step import Step

__all__ = ["WorkerSettings", "connect", "load_steps", "run_worker"]

log = logging.getLogger("baton_temporal.worker")


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker program reads from its environment."""

    step_modules: tuple[str, ...] = ()
    task_queue: str = "baton"
    graceful_shutdown: timedelta = timedelta(seconds=300)
    max_concurrent_steps: int = 100
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        modules = tuple(m.strip() for m in env.get("BATON_STEPS", "").split(",") if m.strip())
        return cls(
            step_modules=modules,
            task_queue=env.get("BATON_TASK_QUEUE", "baton"),
            graceful_shutdown=timedelta(
                seconds=_number(env, "BATON_GRACEFUL_SHUTDOWN_S", 300, float)
            ),
            max_concurrent_steps=_number(env, "BATON_MAX_CONCURRENT_STEPS", 100, int),
        )


def _number(env: Mapping[str, str], key: str, default: Any, kind: type) -> Any:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number; set it to e.g. {default}") from None
    if value <= 0:
        raise ValueError(f"{key}={raw!r} must be greater than 0")
    return value


def load_steps(specs: Iterable[str]) -> list[Step]:
    """Import step modules and collect their steps.

    ``"myapp.steps"`` takes every :class:`Step` defined at the module's top level;
    ``"myapp.steps:STEPS"`` takes the steps in that attribute (one step or a list).
    """
    steps: list[Step] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ImportError(
                f"cannot import step module {module_name!r} ({err}); check BATON_STEPS and "
                "that the module is on PYTHONPATH"
            ) from err
        if attr:
            try:
                value = getattr(module, attr)
            except AttributeError:
                raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None
            found = [value] if isinstance(value, Step) else list(value)
        else:
            found = [v for v in vars(module).values() if isinstance(v, Step)]
        if not found:
            raise ImportError(f"{spec!r} holds no steps; decorate step functions with @baton.step")
        steps.extend(found)
    return steps


async def connect(**overrides: Any) -> Client:
    """A Temporal client configured from the environment (``TEMPORAL_ADDRESS``...).

    Example::

        client = await baton.worker.connect()
    """
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    if os.environ.get("BATON_CODEC_KEYS") and "data_converter" not in overrides:
        # Payload encryption on: workers and the CLI read and write encrypted history.
        from .codec import data_converter

        config["data_converter"] = data_converter()
    config.update(overrides)
    try:
        return await Client.connect(**config)
    except RuntimeError as err:
        raise ConnectionError(
            f"cannot reach Temporal at {config['target_host']} ({err}); start a server "
            "(`baton dev` runs one locally) or set TEMPORAL_ADDRESS to your cluster's "
            "frontend (host:port)"
        ) from err


async def run_worker(
    settings: WorkerSettings | None = None,
    *,
    client: Client | None = None,
    steps: Sequence[Step] = (),
    plugin: BatonPlugin | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    On shutdown the worker stops taking new steps and gives the running ones
    ``settings.graceful_shutdown`` to finish; Temporal retries any it had to cut off.
    """
    settings = settings or WorkerSettings.from_env()
    all_steps = [*steps, *load_steps(settings.step_modules)]
    plugin = plugin or BatonPlugin(steps=all_steps)
    await plugin.preflight()  # an unmigrated or misconfigured ledger stops us here
    client = client or await connect()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not possible outside the main thread (or on Windows): then only `stop` stops it.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        plugins=[plugin],
        graceful_shutdown_timeout=settings.graceful_shutdown,
        max_concurrent_activities=settings.max_concurrent_steps,
    )
    log.info(
        "baton worker on task queue %r with steps %s",
        settings.task_queue,
        sorted(s.name for s in plugin.steps),
    )
    async with worker:
        await stop.wait()
        log.info("shutting down: letting running steps finish")
    log.info("worker stopped")
