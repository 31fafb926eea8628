"""``BatonPlugin``: one object that wires baton-temporal into a Temporal worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import importlib
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.common import RawValue
from temporalio.converter import DataConverter, StorageDriver
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.plugin import SimplePlugin
from temporalio.worker import WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ._routing import TaskQueueAllowList, allowed_task_queues_from
from .flow._budget import check_budget
from .flow._errors import StepDefinitionError
from .ledger import LedgerError, LedgerNotMigrated, LedgerUnavailable
from .llm import LLMClients, LLMConfig, LLMConfigError
from .llm._clients import transport_from_env
from .llm._errors import max_retry_after
from .payloads import (
    PayloadStoreInterceptor,
    external_storage,
    with_payload_store,
    with_storage,
)
from .pricing import Pricer
from .steps._accounting import UsageActivities, UsageInterceptor, WorkerResources
from .steps._batch import BatchActivities
from .steps._step import Step
from .steps._threads import DEFAULT_SYNC_STEP_THREADS, SyncStepThreads
from .workflow._flow_workflow import FlowWorkflow
from .workflow._unregistered import DEFAULT_UNREGISTERED_STEP_WAIT, NoEagerRetries
from .workflow._wire import UNKNOWN_STEP_ERROR, UNREGISTERED_STEP_KEY

if TYPE_CHECKING:
    from .ledger import LedgerStore
    from .ledger._sink import UsageSink
    from .tracing import Tracing

log = logging.getLogger("baton_temporal")

__all__ = ["BatonPlugin"]

# Imported once by the worker and shared with every workflow sandbox instead of being
# re-imported per run: they are heavy, and none keeps state that workflows could see.
PASSTHROUGH_MODULES = (
    "baton_temporal",
    "pydantic",
    "pydantic_core",
    "anthropic",
    "openai",
    "httpx",
    "httpx2",
    "sqlalchemy",
    "genai_prices",
    "yaml",
    # temporalio's tracing interceptor runs in workflow code when tracing is on.
    "opentelemetry",
)


class BatonPlugin(SimplePlugin):
    """Registers the flow workflow, your steps, the usage interceptor and baton's own
    activities on a worker, and owns the worker's ledger and LLM clients.

    Example::

        worker = Worker(client, task_queue="baton",
                        plugins=[baton.BatonPlugin(steps=[parse_doc, assess, report])])

    ``workflows``: your hand-written ``@workflow.defn`` classes (or pass them to
    ``Worker``). ``ledger``: a URL, a :class:`~baton_temporal.ledger.LedgerStore`, or
    ``False`` for none; default ``$BATON_LEDGER_URL``, else the SQLite file
    ``./.baton/ledger.sqlite3``. ``pricer``: how calls are priced (default:
    ``genai-prices``, overridable by ``$BATON_PRICES_FILE`` / ``$BATON_PRICER``).
    ``llm``: provider keys and URLs (default: the usual environment variables).
    ``debug``: save every LLM request/response (default ``$BATON_DEBUG``; flows can
    switch it on per run with ``baton.new(..., debug=True)``). ``migrate``: create the
    ledger tables if missing (default: only for an SQLite ledger; for PostgreSQL run
    ``baton db upgrade``). ``sync_step_threads``: threads for plain-function (sync)
    steps, the worker's own pool (default: one per activity slot of the worker,
    ``max_concurrent_activities``, 100 unless set). ``allowed_task_queues``: the only
    task queues a flow may send a step to (default ``$BATON_ALLOWED_TASK_QUEUES``,
    comma-separated; unset: any). A flow naming another fails at once with
    ``TaskQueueNotAllowed``: set it where workers run flow files written by others.
    ``payload_store``: where payloads of ``payload_threshold``
    bytes or more are kept instead of Temporal history (default ``$BATON_PAYLOAD_STORE``,
    see :mod:`baton_temporal.payloads`; ``False`` for none). Pass the plugin to the client
    too (``Client.connect(..., plugins=[BatonPlugin()])``) so that it reads them back;
    ``Flow.start`` and the ``baton`` CLI do that for you.
    ``unregistered_step_wait``: how long a flow that reaches a step
    no worker of the queue registers waits for one that does (a rolling deploy that adds
    the step), trying again with backoff; default ``$BATON_UNREGISTERED_STEP_WAIT_S``
    seconds, else 10 minutes; 0 fails such a step at once.
    ``tracing``: OpenTelemetry spans for flows, steps and LLM calls (default: on when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``BATON_TRACING=true`` is set; a ``TracerProvider``: spans go to it; see
    :mod:`baton_temporal.tracing`).
    ``budget_usd``: the budget cap, in US dollars, of flows that set none themselves
    (default ``$BATON_BUDGET_USD``; unset: no cap). See docs/budgets.md.
    """

    def __init__(
        self,
        steps: Sequence[Step] = (),
        *,
        workflows: Sequence[type] = (),
        ledger: LedgerStore | str | bool | None = None,
        pricer: Pricer | None = None,
        llm: LLMConfig | None = None,
        debug: bool | None = None,
        migrate: bool | None = None,
        sync_step_threads: int | None = None,
        allowed_task_queues: Sequence[str] | None = None,
        payload_store: StorageDriver | str | bool | None = None,
        payload_threshold: int | None = None,
        unregistered_step_wait: timedelta | float | None = None,
        tracing: Any = None,
        budget_usd: Decimal | str | float | None = None,
    ) -> None:
        self.steps = _check_steps(steps)
        # Checked now: a bad default stops the worker at start-up, not a call later.
        self.budget_usd = budget_from_env() if budget_usd is None else check_budget(budget_usd)
        # Imported (with OpenTelemetry) only when on; see baton_temporal.tracing.
        self.tracing: Tracing | None = None
        if tracing is None:
            from .tracing import tracing_from_env

            tracing = tracing_from_env()
        if tracing:
            from .tracing import start_tracing

            # True: the global provider (OTLP from the environment); else a provider.
            self.tracing = start_tracing(provider=None if tracing is True else tracing)
        self.unregistered_step_wait = _wait_setting(unregistered_step_wait)
        if sync_step_threads is not None and (
            not isinstance(sync_step_threads, int) or sync_step_threads < 1
        ):
            raise ValueError(
                f"sync_step_threads must be a whole number >= 1, got {sync_step_threads!r}"
            )
        self._sync_step_threads = sync_step_threads
        self._worker_slots = 0
        self.allowed_task_queues = allowed_task_queues_from(allowed_task_queues)
        # Resolved now: a bad store setting stops the worker at start-up, not a run later.
        self.payload_storage = external_storage(payload_store, threshold=payload_threshold)
        self._ledger = ledger
        self._pricer = pricer
        self._llm = llm
        self._debug = debug
        self._migrate = migrate
        self._resources: WorkerResources | None = None
        self._users = 0
        usage_activities = UsageActivities(self.resources)
        activities: list[Any] = [s.activity for s in self.steps]
        catch_all = UnregisteredStep(self.unregistered_step_wait, [s.name for s in self.steps])
        batches = BatchActivities(self.resources)
        activities += [usage_activities.record_usage, catch_all.run]
        activities += [batches.submit, batches.poll, batches.fetch, batches.cancel]
        super().__init__(
            "baton_temporal.BatonPlugin",
            workflows=[FlowWorkflow, *workflows],
            activities=activities,
            interceptors=[
                # First, so that a step's span covers all the rest (its LLM calls too).
                *([self.tracing.interceptor] if self.tracing else []),
                UsageInterceptor(self.resources),
                NoEagerRetries(),
                TaskQueueAllowList(self.allowed_task_queues),
                *([PayloadStoreInterceptor()] if self.payload_storage else []),
            ],
            workflow_runner=_with_passthrough,
            run_context=self._run_context,
            data_converter=self._converter,
        )

    def _converter(self, existing: DataConverter | None) -> DataConverter:
        # After the codec in temporalio's pipeline: the store only ever sees ciphertext.
        return with_storage(existing or DataConverter.default, self.payload_storage)

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        # Sync steps get one thread per activity slot of the largest worker using us.
        slots = config.get("max_concurrent_activities") or DEFAULT_SYNC_STEP_THREADS
        self._worker_slots = max(self._worker_slots, int(slots))
        # A worker takes its data converter from its client: give it the payload store
        # when the client was connected without this plugin.
        if "client" in config and self.payload_storage is not None:
            config["client"] = with_payload_store(config["client"], self.payload_storage)
        return config

    async def preflight(self) -> None:
        """Check the ledger before starting a worker, raising what would stop it from
        recording usage: ``LedgerNotMigrated`` (run ``baton db upgrade``),
        ``LedgerConfigError`` (a bad URL), and what would fail every LLM call:
        ``LLMConfigError`` (a malformed API key). An unreachable ledger only logs a warning.

        Example::

            plugin = baton.BatonPlugin(steps=STEPS)
            await plugin.preflight()
            async with Worker(client, task_queue="baton", plugins=[plugin]): ...
        """
        if self._llm is None:
            LLMConfig.from_env()  # LLMConfigError for a malformed key, without quoting it
        max_retry_after()  # ValueError for a BATON_MAX_RETRY_AFTER_S that is not seconds
        transport_from_env()  # ValueError for a BATON_HTTP_TRANSPORT that is not one
        store = self._make_store()
        if store is None:
            return
        try:
            await _check_ledger(store, self._migrate)
        finally:
            if store is not self._ledger:
                await store.close()

    def _make_store(self) -> UsageSink | None:
        # Checked before the import: a worker without a ledger never loads SQLAlchemy and
        # the store's modules (measured: 21 MiB less RSS after the warm-up flows,
        # python -m benchmarks.rss_breakdown --only baton_noledger).
        if self._ledger is False:
            return None
        if not self._migrate and (self._ledger in (None, True) or isinstance(self._ledger, str)):
            from .ledger._urls import default_ledger_url, is_postgres_url

            text = self._ledger if isinstance(self._ledger, str) else default_ledger_url()
            if is_postgres_url(text):
                # Writes only, on psycopg: SQLAlchemy (and its ORM) stay out of the
                # worker (see ledger/_pg_writer.py). Migrating needs the store.
                from .ledger._pg_writer import PgUsageWriter

                return PgUsageWriter(text, pricer=self._pricer)
        from .ledger import LedgerStore  # SQLAlchemy, only once a ledger is opened

        if isinstance(self._ledger, LedgerStore):
            return self._ledger
        # Stripped as the light writer (and BATON_LEDGER_URL) strips it: a URL read from a
        # file ends with a newline, and migrate=True must not refuse what False accepts.
        url = None if self._ledger in (None, True) else str(self._ledger).strip()
        return LedgerStore.from_url(url, pricer=self._pricer)

    def resources(self) -> WorkerResources | None:
        """The ledger and LLM clients of the running worker (None when not running)."""
        return self._resources

    @contextlib.asynccontextmanager
    async def _run_context(self) -> AsyncIterator[None]:
        if self._users == 0:
            self._resources = await self._open()
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._resources is not None:
                resources, self._resources = self._resources, None
                await resources.aclose()
                if self.tracing is not None:  # the spans of the last steps, bounded wait
                    await asyncio.to_thread(self.tracing.flush)

    async def _open(self) -> WorkerResources:
        # Before the worker polls: imported lazily, by the first LLM call, they would
        # freeze the event loop (~0.5 s openai, ~1.1 s anthropic) with steps in flight.
        await asyncio.to_thread(_import_heavy_modules)
        # Nothing raised here may escape: an error inside a worker's run context leaves
        # the worker hanging instead of failing. Callers that want a start-up error call
        # preflight() first (the worker program and the CLI do).
        store: UsageSink | None = None
        try:
            store = self._make_store()
            if store is not None:
                await _check_ledger(store, self._migrate)
        except (LedgerError, ValueError) as err:
            log.error(
                "ledger problem at worker start: %s; LLM usage is kept in Temporal and "
                "written once the ledger works",
                err,
            )
        debug = self._debug
        if debug is None:
            debug = os.environ.get("BATON_DEBUG", "").lower() in ("1", "true", "yes", "on")
        llm_error = None
        try:
            llm_config = self._llm or LLMConfig.from_env()
        except LLMConfigError as err:
            # Every LLM call then fails at once with this (non-retryable) message.
            log.error("LLM configuration problem at worker start: %s", err)
            llm_config, llm_error = LLMConfig(), str(err)
        threads = self._sync_step_threads or self._worker_slots or DEFAULT_SYNC_STEP_THREADS
        slots = self._worker_slots or DEFAULT_SYNC_STEP_THREADS
        anthropic_options = None
        if self.tracing is not None:  # one span per LLM call: baton's, not the SDK's too
            from .tracing import anthropic_client_options

            anthropic_options = anthropic_client_options()
        try:
            transport = transport_from_env()
        except ValueError as err:
            log.error("HTTP transport problem at worker start: %s; using aiohttp", err)
            transport = "aiohttp"
        # One SDK client per provider endpoint for the whole worker, its connection
        # pool sized from the worker's activity slots.
        clients = LLMClients.for_slots(
            slots, anthropic_options=anthropic_options, transport=transport
        )
        return WorkerResources(
            clients=clients,
            store=store,
            llm_config=llm_config,
            debug=debug,
            llm_error=llm_error,
            sync_threads=SyncStepThreads(threads),
            tracing=self.tracing,
            budget_usd=self.budget_usd,
            pricer=self._pricer,
        )


BUDGET_ENV = "BATON_BUDGET_USD"


def budget_from_env(environ: Mapping[str, str] | None = None) -> Decimal | None:
    """The worker's default budget cap from ``BATON_BUDGET_USD`` (None if unset)."""
    raw = (os.environ if environ is None else environ).get(BUDGET_ENV, "").strip()
    if not raw:
        return None
    try:
        return check_budget(raw, BUDGET_ENV)
    except ValueError as err:
        raise ValueError(f"{err} (or unset it for no default cap)") from None


def _import_heavy_modules() -> None:
    """Import the provider SDKs and the price data now, at worker start-up."""
    for name in ("anthropic", "openai", "genai_prices"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


async def _check_ledger(store: UsageSink, migrate: bool | None) -> None:
    """Refuse to start on an unmigrated ledger (the error says how to fix it); start, with
    a warning, on an unreachable one: usage then waits in Temporal until it is back."""
    if migrate is None:
        migrate = store.dialect == "sqlite"
    try:
        await store.check_schema()
    except LedgerNotMigrated:
        if not migrate:
            raise
        await store.migrate()
    except LedgerUnavailable as err:
        log.warning("ledger unreachable at worker start; usage will be kept until it is: %s", err)


def _check_steps(steps: Sequence[Any]) -> list[Step]:
    if isinstance(steps, Step):
        steps = [steps]
    by_name: dict[str, Step] = {}
    for s in steps:
        if not isinstance(s, Step):
            label = getattr(s, "__qualname__", repr(s))
            raise StepDefinitionError(
                f"BatonPlugin(steps=...) got {label}, which is not a step; decorate it with "
                "@baton.step"
            )
        other = by_name.get(s.name)
        if other is not None and other.fn is not s.fn:
            raise StepDefinitionError(
                f"two different steps are named {s.name!r} ({other.fn.__module__} and "
                f"{s.fn.__module__}); rename one with @baton.step(name=...)"
            )
        by_name[s.name] = s
    return list(by_name.values())


def _with_passthrough(runner: WorkflowRunner | None) -> WorkflowRunner:
    if runner is None:
        runner = SandboxedWorkflowRunner()
    if isinstance(runner, SandboxedWorkflowRunner):
        restrictions = runner.restrictions.with_passthrough_modules(*PASSTHROUGH_MODULES)
        return dataclasses.replace(runner, restrictions=restrictions)
    return runner


def _wait_setting(value: timedelta | float | None) -> timedelta:
    if value is None:
        raw = os.environ.get("BATON_UNREGISTERED_STEP_WAIT_S", "").strip()
        if not raw:
            return DEFAULT_UNREGISTERED_STEP_WAIT
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"BATON_UNREGISTERED_STEP_WAIT_S={raw!r} is not a number of seconds; set it "
                "to e.g. 600 (0: fail a step no worker registers at once)"
            ) from None
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise TypeError(
            f"unregistered_step_wait must be a timedelta or seconds, got {value!r}; e.g. "
            "timedelta(minutes=10)"
        )
    wait = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if wait < timedelta(0) or wait > timedelta(days=7):
        raise ValueError(
            f"unregistered_step_wait must be between 0 and 7 days, got {wait}; 0 fails a step "
            "no worker registers at once"
        )
    return wait


class UnregisteredStep:
    """The catch-all activity: answers for every step this worker does not register.

    Without it Temporal would retry an unregistered activity forever. It fails the
    attempt at once (non-retryable, so the step's own retry policy is not spent) with an
    ``UnknownStep`` error that tells the workflow how long to wait for a worker that
    registers the step; the workflow waits and tries again (workflow/_unregistered.py).
    """

    def __init__(self, wait: timedelta, known: Sequence[str]) -> None:
        self._wait = wait
        self._known = sorted(known)
        self._reported: set[tuple[str, str]] = set()

    @activity.defn(dynamic=True)
    async def run(self, args: Sequence[RawValue]) -> Any:
        info = activity.info()
        close = difflib.get_close_matches(info.activity_type, self._known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if (info.task_queue, info.activity_type) not in self._reported:
            # Once per step, not per try: a rollout's retries would flood the log.
            self._reported.add((info.task_queue, info.activity_type))
            log.warning(
                "this worker does not register step %r (task queue %r)%s; flows that need it "
                "wait up to %s for a worker that does",
                info.activity_type,
                info.task_queue,
                hint,
                self._wait,
            )
        raise ApplicationError(
            f"no step named {info.activity_type!r} is registered on this worker of task queue "
            f"{info.task_queue!r}{hint}; decorate the function with @baton.step and pass it "
            "to BatonPlugin(steps=[...]) on every worker of that queue (or fix the name in "
            "the flow)",
            {
                UNREGISTERED_STEP_KEY: {
                    "step": info.activity_type,
                    "task_queue": info.task_queue,
                    "wait_seconds": self._wait.total_seconds(),
                    "hint": hint,
                    "attempt": info.attempt,
                }
            },
            type=UNKNOWN_STEP_ERROR,
            non_retryable=True,
            # An expected answer during a rollout: no traceback in the worker's log.
            category=ApplicationErrorCategory.BENIGN,
        )
