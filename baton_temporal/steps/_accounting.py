"""Usage accounting on the worker: ``call_llm``, the activity interceptor that strips
``llm_usage`` and writes the ledger, and the activity that writes deferred usage.

How a call's usage reaches the ledger, and why nothing is lost or billed twice:

1. ``call_llm`` records the normalised usage of every call in the running attempt's
   capture (a context variable the interceptor sets per activity attempt), with a
   ``call_id`` that is stable for that attempt.
2. When the attempt ends, the interceptor removes ``llm_usage`` from the result, merges
   it with the captured calls (a call reported both ways counts once), and writes one
   row per call, idempotently, straight to the ledger.
3. If the ledger is down, the records travel back to the workflow inside the step's
   output (``StepOutput.pending_usage``), i.e. in Temporal history; the workflow then
   runs ``baton.record_usage``, which Temporal retries until the ledger is back. The
   step's result is kept and the LLM call is not made again.
4. An attempt that fails after calling a model still cost money: its calls are written
   with status ``step_failed``; if the ledger is down they ride on the error's details
   (final attempt) and on the attempt's heartbeat details (picked up by the next one).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ..ledger import LedgerError, LedgerNotMigrated, LedgerStore, UsageRecord
from ..llm import INVALID_LLM_CONFIG, LLMClients, LLMConfig, LLMResponse, Message, complete
from ..metrics import ledger_counters
from ..usage import LLMUsage, UsageError, parse_llm_usage
from ..workflow._wire import PENDING_USAGE_KEY, StepInput, StepOutput, pending_from
from ._job import Job
from ._threads import SyncStepThreads

__all__ = ["call_llm"]

log = logging.getLogger("baton_temporal.usage")

INVALID_USAGE_ERROR = "InvalidLLMUsage"
LEDGER_WRITE_TIMEOUT_S = 5.0


@dataclass
class WorkerResources:
    """What one worker's steps share: the ledger, the LLM clients, the debug switch."""

    store: LedgerStore | None
    llm_config: LLMConfig
    clients: LLMClients = field(default_factory=LLMClients)
    debug: bool = False
    # Set when the worker's LLM configuration was refused at start (a malformed key).
    llm_error: str | None = None
    # The worker's own pool for sync steps (see steps/_threads.py).
    sync_threads: SyncStepThreads | None = None

    async def aclose(self) -> None:
        if self.sync_threads is not None:
            self.sync_threads.shutdown()
        await self.clients.aclose()
        if self.store is not None:
            await self.store.close()


@dataclass
class _Attempt:
    """The LLM calls of one running step attempt."""

    resources: WorkerResources | None
    usages: list[LLMUsage] = field(default_factory=list)


_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "baton_attempt", default=None
)


def current_sync_threads() -> SyncStepThreads | None:
    """The running worker's sync-step pool (None outside a worker with BatonPlugin)."""
    attempt = _attempt.get()
    resources = attempt.resources if attempt else None
    return resources.sync_threads if resources is not None else None


async def call_llm(
    job: Job,
    messages: Sequence[Message],
    *,
    model: str | None = None,
    **params: Any,
) -> LLMResponse:
    """Call an LLM from a step; its usage is recorded in the ledger for this step.

    ``model`` defaults to the step's configured model (``"workflow_model"`` in its args).
    The provider comes from the model string (``claude-*``: Anthropic; ``gpt-*``,
    ``o1``/``o3``/``o4``...: OpenAI) or a ``provider:`` prefix
    (``openai-compatible:llama3.2`` for a local OpenAI-compatible server). ``params``
    (``max_tokens``, ``temperature``...) go to the provider. With the flow's (or the
    worker's) debug switch on, the full request and response are saved to
    ``workflow_debug_logs``.

    Example::

        reply = await baton.call_llm(job, [{"role": "user", "content": prompt}],
                                     model=multi_model.model_for(job, "gpt-4o"),
                                     max_tokens=300)
        return {"summary": reply.text}
    """
    chosen = model or job.args.get("workflow_model")
    if not isinstance(chosen, str) or not chosen:
        raise ApplicationError(
            f"call_llm in step {job.step!r} has no model: pass model='...' or configure one "
            "for this step with multi_model.configure / fan_out",
            type="UnknownModel",
            non_retryable=True,
        )
    attempt = _attempt.get()
    resources = attempt.resources if attempt else None
    if resources is not None and resources.llm_error:
        raise ApplicationError(resources.llm_error, type=INVALID_LLM_CONFIG, non_retryable=True)
    call_id = f"{job.step}/{job.attempt}/{len(attempt.usages) if attempt else 0}"
    response = await complete(
        messages,
        model=chosen,
        config=resources.llm_config if resources else None,
        clients=resources.clients if resources else None,
        call_id=call_id,
        **params,
    )
    if attempt is not None:
        attempt.usages.append(response.usage)
        if resources and resources.store is not None and (job.debug or resources.debug):
            await _save_debug(resources.store, job, response)
    return response


async def _save_debug(store: LedgerStore, job: Job, response: LLMResponse) -> None:
    # Debug logs are a diagnostic aid: a ledger outage must not fail the step for them.
    try:
        await asyncio.wait_for(
            store.record_debug(
                workflow_id=job.workflow_id,
                run_id=job.run_id or "-",
                step=job.step,
                attempt=job.attempt,
                call_id=response.usage.call_id,
                model=response.model,
                request=response.raw_request,
                response=response.raw_response,
            ),
            LEDGER_WRITE_TIMEOUT_S,
        )
    except (LedgerError, TimeoutError) as err:
        log.warning("debug log of %s not saved: %s", job.step, err)


def split_usage(result: Any) -> tuple[Any, list[Any]]:
    """Remove ``llm_usage`` from a result (a dict, or a list of dicts); return both."""
    found: list[Any] = []

    def take(item: Any) -> Any:
        if isinstance(item, dict) and "llm_usage" in item:
            item = dict(item)
            value = item.pop("llm_usage")
            found.extend(value if isinstance(value, list) else [value])
        return item

    if isinstance(result, list):
        return [take(item) for item in result], found
    return take(result), found


def merge_usage(captured: list[LLMUsage], explicit: list[LLMUsage]) -> list[LLMUsage]:
    """Captured calls plus explicitly reported ones, each call once.

    An explicit entry is the same call as a captured one when their ``call_id`` match,
    or, lacking a call_id, when model and token counts match an unclaimed captured call
    (a step that copied ``reply.usage`` numbers into its ``llm_usage``).
    """
    merged = list(captured)
    unclaimed = list(captured)
    ids = {u.call_id for u in captured if u.call_id}
    for usage in explicit:
        if usage.call_id and usage.call_id in ids:
            continue
        twin = next((c for c in unclaimed if usage.call_id is None and _same_call(c, usage)), None)
        if twin is not None:
            unclaimed.remove(twin)
            continue
        merged.append(usage)
    return merged


def _same_call(a: LLMUsage, b: LLMUsage) -> bool:
    same_model = a.model == b.model or a.model.startswith(b.model) or b.model.startswith(a.model)
    return same_model and a.input_tokens == b.input_tokens and a.output_tokens == b.output_tokens


class UsageInterceptor(Interceptor):
    """Installed by ``BatonPlugin``: accounts the LLM usage of every activity attempt."""

    def __init__(self, resources: Any) -> None:
        # A callable returning the worker's WorkerResources (they exist only while the
        # worker runs, so they are looked up per attempt, never cached globally).
        self._resources = resources

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _UsageInbound(next, self._resources)


class _UsageInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, resources: Any) -> None:
        super().__init__(next)
        self._get_resources = resources
        self._outbound: _CarryPending | None = None

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = _CarryPending(outbound)
        super().init(self._outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type == "baton.record_usage":
            return await self.next.execute_activity(input)
        resources: WorkerResources | None = self._get_resources()
        step_input = input.args[0] if input.args and isinstance(input.args[0], StepInput) else None
        context = {
            "workflow_id": info.workflow_id or "-",
            "run_id": info.workflow_run_id or "-",
            "workflow_name": (step_input.workflow_name if step_input else "")
            or info.workflow_type
            or "",
            "step": step_input.step if step_input else info.activity_type,
            "activity_id": info.activity_id,
            "attempt": info.attempt,
        }
        # Usage a previous attempt could not write rides along in its heartbeat details.
        carried = pending_from(info.heartbeat_details)
        if self._outbound is not None:
            self._outbound.pending = carried
        attempt = _Attempt(resources)
        token = _attempt.set(attempt)
        try:
            result = await self.next.execute_activity(input)
        except BaseException as err:
            _attempt.reset(token)
            records = _records(attempt.usages, context, "step_failed")
            pending = carried + await _write(resources, records)
            if pending:
                activity.heartbeat({PENDING_USAGE_KEY: pending})
                raise _with_pending(err, pending) from err
            raise
        _attempt.reset(token)
        body = result.result if isinstance(result, StepOutput) else result
        body, raw = split_usage(body)
        try:
            explicit = parse_llm_usage(raw, step=str(context["step"])) if raw else []
        except UsageError as err:
            # The calls were made and billed: write what was captured, then refuse.
            pending = carried + await _write(
                resources, _records(attempt.usages, context, "step_failed")
            )
            raise _with_pending(
                ApplicationError(str(err), type=INVALID_USAGE_ERROR, non_retryable=True),
                pending,
            ) from None
        records = _records(merge_usage(attempt.usages, explicit), context, "ok")
        pending = carried + await _write(resources, records)
        if isinstance(result, StepOutput):
            return StepOutput(result=body, attempt=result.attempt, pending_usage=pending)
        if pending:
            log.error(
                "ledger unavailable: usage of plain activity %s (%d calls) not recorded; "
                "run LLM calls in @baton.step steps to have it kept until the ledger is back",
                info.activity_type,
                len(pending),
            )
        return body


class _CarryPending(ActivityOutboundInterceptor):
    """Keeps usage inherited from an earlier attempt in this attempt's heartbeats.

    Temporal keeps only the last heartbeat's details, and a step's keep-alive heartbeats
    carry none: without this, an attempt that is lost after it inherited unwritten usage
    (worker killed, attempt timed out) would erase that usage before handing it on.
    """

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        super().__init__(next)
        self.pending: list[dict] = []

    def heartbeat(self, *details: Any) -> None:
        if self.pending and not details:
            details = ({PENDING_USAGE_KEY: self.pending},)
        super().heartbeat(*details)


def _records(usages: list[LLMUsage], context: Mapping[str, Any], status: Any) -> list[UsageRecord]:
    return UsageRecord.for_attempt(usages, status=status, **context) if usages else []


async def _write(resources: WorkerResources | None, records: list[UsageRecord]) -> list[dict]:
    """Write records now; return those that could not be written (as JSON data)."""
    if not records:
        return []
    if resources is None or resources.store is None:
        return []
    # These calls are paid for: if the attempt is cancelled meanwhile (Temporal gave up on
    # a late attempt, or the worker is shutting down), the write still finishes (within
    # its timeout) before the cancellation goes on; cancelling it would lose the calls.
    write = asyncio.ensure_future(
        asyncio.wait_for(resources.store.record(records), LEDGER_WRITE_TIMEOUT_S)
    )
    cancelled = False
    while not write.done():
        try:
            await asyncio.wait({write})  # unlike awaiting it, never cancels the write
        except asyncio.CancelledError:
            cancelled = True
    try:
        write.result()
        pending: list[dict] = []
        ledger_counters().wrote(len(records))
    except (LedgerError, TimeoutError, OSError) as err:
        pending = [r.model_dump(mode="json") for r in records]
        ledger_counters().failed(len(records), deferred=True)
        if cancelled:
            # Picked up by the next attempt if Temporal still takes this one's heartbeats.
            activity.heartbeat({PENDING_USAGE_KEY: pending})
            log.error(
                "ledger write failed as the attempt was cancelled; %d calls left in its "
                "heartbeat details for the next attempt: %s",
                len(records),
                err,
            )
        else:
            level = logging.ERROR if isinstance(err, LedgerNotMigrated) else logging.WARNING
            log.log(
                level, "ledger write deferred to the workflow (%d calls): %s", len(records), err
            )
    if cancelled:
        raise asyncio.CancelledError()
    return pending


def _with_pending(err: BaseException, pending: list[dict]) -> BaseException:
    """The same failure, carrying unwritten usage records in its details."""
    if isinstance(err, ApplicationError):
        return ApplicationError(
            err.message,
            *err.details,
            {PENDING_USAGE_KEY: pending},
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
            category=err.category,
        )
    if isinstance(err, Exception) and not isinstance(err, asyncio.CancelledError):
        return ApplicationError(str(err), {PENDING_USAGE_KEY: pending}, type=type(err).__name__)
    return err


class UsageActivities:
    """``baton.record_usage``: writes usage that a step could not; retried until done."""

    def __init__(self, resources: Any) -> None:
        self._get_resources = resources

    @activity.defn(name="baton.record_usage")
    async def record_usage(self, records: list[dict[str, Any]]) -> int:
        resources: WorkerResources | None = self._get_resources()
        if resources is None or resources.store is None:
            return 0
        try:
            written = await resources.store.record(records)
        except LedgerError as err:
            ledger_counters().failed(len(records), deferred=False)
            # Retryable on purpose: the records wait in Temporal until the ledger is back.
            # Not chained: with the driver's causes and their tracebacks the failure is
            # over the server's activity-failure size limit, which then keeps only
            # "Failure exceeds size limit." and `baton status` could not say why it waits.
            raise ApplicationError(
                f"ledger not writable yet: {err}", type="LedgerUnavailable"
            ) from None
        ledger_counters().wrote(len(records), path="record_usage")
        return written
