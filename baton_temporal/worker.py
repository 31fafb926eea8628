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
                                (default 630: the default step timeout, 600, plus 30;
                                keep it above your longest step timeout)
``BATON_MAX_CONCURRENT_STEPS``  steps one worker runs at once (default 100); also the
                                size of the worker's own thread pool for plain-function
                                (sync) steps, one thread per slot
``BATON_HEALTH_PORT``           serve ``/livez`` and ``/readyz`` on this port (off if unset)
``BATON_METRICS_PORT``          serve Prometheus metrics (the SDK's and the ledger's) here
``BATON_BUILD_ID``              worker versioning: this worker's build id (the image sets
                                it); unset, the worker is unversioned
``BATON_DEPLOYMENT_NAME``       worker versioning: the deployment (default: the task queue)
``BATON_PROMOTE_FIRST_VERSION`` ``true``: make this version current if the deployment has
                                none yet (a first install)
``BATON_ALLOWED_TASK_QUEUES``   comma-separated task queues flows may route steps to
                                (``options.task_queue``); unset: any. Set it where
                                workers run flow files written by others
``BATON_MAX_RETRY_AFTER_S``     longest provider ``retry-after`` obeyed (default 600)
``BATON_UNREGISTERED_STEP_WAIT_S`` how long a flow waits for a worker that registers a step
                                this one lacks (a rolling deploy; default 600, 0: fail)
``BATON_BUDGET_USD``            default budget cap in US dollars for flows that set none
                                (e.g. ``5``); a model call that could pass it is refused
                                (``BudgetExceeded``, see docs/budgets.md); unset: no cap
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
from decimal import Decimal
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.worker import Worker

from ._plugin import BatonPlugin, budget_from_env
from ._rollout import DEFAULT_DRAIN, drain_warnings
from ._routing import allowed_task_queues_from
from .steps._step import Step

__all__ = ["WorkerSettings", "connect", "load_steps", "run_worker"]

log = logging.getLogger("baton_temporal.worker")


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker program reads from its environment."""

    step_modules: tuple[str, ...] = ()
    task_queue: str = "baton"
    graceful_shutdown: timedelta = DEFAULT_DRAIN
    max_concurrent_steps: int = 100
    health_port: int | None = None
    metrics_port: int | None = None
    build_id: str | None = None
    deployment_name: str | None = None
    promote_first_version: bool = False
    allowed_task_queues: frozenset[str] | None = None
    budget_usd: Decimal | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        modules = tuple(m.strip() for m in env.get("BATON_STEPS", "").split(",") if m.strip())
        return cls(
            step_modules=modules,
            task_queue=env.get("BATON_TASK_QUEUE", "baton"),
            graceful_shutdown=timedelta(
                seconds=_number(
                    env, "BATON_GRACEFUL_SHUTDOWN_S", DEFAULT_DRAIN.total_seconds(), float
                )
            ),
            max_concurrent_steps=_number(env, "BATON_MAX_CONCURRENT_STEPS", 100, int),
            health_port=_port(env, "BATON_HEALTH_PORT"),
            metrics_port=_port(env, "BATON_METRICS_PORT"),
            build_id=env.get("BATON_BUILD_ID", "").strip() or None,
            deployment_name=env.get("BATON_DEPLOYMENT_NAME", "").strip() or None,
            promote_first_version=_flag(env, "BATON_PROMOTE_FIRST_VERSION"),
            allowed_task_queues=allowed_task_queues_from(environ=env),
            budget_usd=budget_from_env(env),
        )


def _port(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{key}={raw!r} is not a port number; set it to e.g. 8081")
    return int(raw)


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{key}={raw!r} is not a switch; set it to true or false")


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
        except Exception as err:  # the module itself is broken: say where, not "unexpected"
            raise ImportError(
                f"step module {module_name!r} failed while being imported: "
                f"{type(err).__name__}: {err}; fix the module (--debug shows the traceback)"
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
    from ._connection import check_tls_files, explain_connect_failure

    check_tls_files(os.environ)  # a missing certificate: the fix, not a FileNotFoundError
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    if os.environ.get("BATON_CODEC_KEYS") and "data_converter" not in overrides:
        # Payload encryption on: workers and the CLI read and write encrypted history.
        from .codec import data_converter

        config["data_converter"] = data_converter()
    if "data_converter" not in overrides:
        # Big payloads live in the payload store; the CLI reads them back from there.
        from .payloads import env_storage, with_storage

        config["data_converter"] = with_storage(
            config.get("data_converter") or DataConverter.default, env_storage()
        )
    if "interceptors" not in overrides:
        from .tracing import tracing_from_env

        if tracing_from_env():
            # A flow started here is one trace, its steps and LLM calls under its start.
            from .tracing import start_tracing

            config["interceptors"] = [*config.get("interceptors", ()), start_tracing().interceptor]
    config.update(overrides)
    try:
        return await Client.connect(**config)
    except RuntimeError as err:
        raise ConnectionError(
            explain_connect_failure(config["target_host"], err, os.environ)
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
    if client is None:  # a missing certificate stops us before anything else starts
        from ._connection import check_tls_files

        check_tls_files(os.environ)
    all_steps = [*steps, *load_steps(settings.step_modules)]
    allowed = settings.allowed_task_queues
    plugin = plugin or BatonPlugin(
        steps=all_steps,
        allowed_task_queues=sorted(allowed) if allowed else None,
        budget_usd=settings.budget_usd,
    )
    await plugin.preflight()  # an unmigrated or misconfigured ledger stops us here
    if client is None:
        if settings.metrics_port is not None:  # before the client: it picks the runtime
            from .metrics import enable_prometheus

            enable_prometheus(settings.metrics_port)
        client = await connect()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not possible outside the main thread (or on Windows): then only `stop` stops it.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    from ._worker_extras import run_extras, versioning_options

    for warning in drain_warnings(plugin.steps, settings.graceful_shutdown):
        log.warning("%s", warning)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        plugins=[plugin],
        graceful_shutdown_timeout=settings.graceful_shutdown,
        max_concurrent_activities=settings.max_concurrent_steps,
        **versioning_options(settings),
    )
    log.info(
        "baton worker on task queue %r with steps %s%s",
        settings.task_queue,
        sorted(s.name for s in plugin.steps),
        f"; flows may route steps only to {sorted(plugin.allowed_task_queues)}"
        if plugin.allowed_task_queues is not None
        else "",
    )
    # The health endpoint outlives the drain: ready turns 503, live stays 200.
    async with run_extras(settings, client, plugin) as extras, worker:
        await stop.wait()
        extras.draining = True
        log.info("shutting down: letting running steps finish")
    log.info("worker stopped")
