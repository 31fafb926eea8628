"""Usage accounting on the worker: ``call_llm``, the activity interceptor that strips
``llm_usage`` and writes the ledger, and the activity that writes deferred usage.

How a call's usage reaches the ledger, and why nothing is lost or billed twice:

1. ``call_llm`` reserves the call's index in the running attempt (a context variable the
   interceptor sets per activity attempt) before anything is awaited, so concurrent
   calls get distinct ``call_id`` s. It writes an *intent* row (call id, model, prompt
   size) before the request leaves, and completes it with the usage when the reply
   arrives. A worker killed in between leaves the intent, which the step's next attempt
   (or ``baton db reconcile``) turns into a ``lost_reply`` row: the call is counted.
2. When the attempt ends, the interceptor removes ``llm_usage`` from the result, merges
   it with the captured calls (an explicit entry is the same call as a captured one only
   by ``call_id``), and writes the rows not yet written, idempotently.
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
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from ..ledger import (
    CallIntent,
    LedgerError,
    LedgerNotMigrated,
    LedgerWriteError,
    UsageRecord,
)
from ..ledger._records import LOST_CANCELLED, LOST_NO_ANSWER
from ..llm import INVALID_LLM_CONFIG, LLMClients, LLMConfig, LLMResponse, Message, complete
from ..llm._complete import BilledReplyError, UnansweredRequestError, check_call_options
from ..llm._providers import resolve_provider
from ..llm._structured import DEFAULT_OUTPUT_RETRIES, OutputMode, call_structured
from ..llm._usage import unknown_usage
from ..metrics import ledger_counters
from ..pricing import Pricer, pricer_from_env
from ..tracing import Tracing, trace_llm_call
from ..usage import LLMUsage, UsageError, parse_llm_usage
from ..workflow._wire import PENDING_USAGE_KEY, StepInput, StepOutput, pending_from
from ._batch import batch_reply, in_batch_step
from ._budget_guard import (
    BUDGET_UNSUPPORTED,
    AttemptBudget,
    BudgetChannel,
    call_cost,
    guard_call,
    settle_call,
)
from ._job import Job
from ._threads import SyncStepThreads

__all__ = ["call_llm"]

if TYPE_CHECKING:
    from ..ledger._sink import UsageSink

log = logging.getLogger("baton_temporal.usage")

INVALID_USAGE_ERROR = "InvalidLLMUsage"
LEDGER_WRITE_TIMEOUT_S = 5.0


@dataclass
class WorkerResources:
    """What one worker's steps share: the ledger, the LLM clients, the debug switch."""

    store: UsageSink | None
    llm_config: LLMConfig
    clients: LLMClients = field(default_factory=LLMClients)
    debug: bool = False
    # Set when the worker's LLM configuration was refused at start (a malformed key).
    llm_error: str | None = None
    # The worker's own pool for sync steps (see steps/_threads.py).
    sync_threads: SyncStepThreads | None = None
    # OpenTelemetry, when the plugin switched tracing on (see tracing.py); else None.
    tracing: Tracing | None = None
    # The worker's default budget cap for flows that set none (BATON_BUDGET_USD).
    budget_usd: Decimal | None = None
    pricer: Pricer | None = None
    budget_channel: BudgetChannel = field(default_factory=BudgetChannel)

    def budget_pricer(self) -> Pricer:
        """The pricer budget checks use: the ledger's, else the one from the environment."""
        if self.pricer is None:
            self.pricer = self.store.pricer if self.store is not None else pricer_from_env()
        return self.pricer

    async def aclose(self) -> None:
        if self.sync_threads is not None:
            self.sync_threads.shutdown()
        await self.clients.aclose()
        if self.store is not None:
            await self.store.close()


@dataclass
class _Call:
    """One LLM call of an attempt: its reserved id, its usage once the reply arrived."""

    index: int
    call_id: str
    usage: LLMUsage | None = None
    written: bool = False  # its usage row is in the ledger
    # The intent write was not confirmed (timed out): it may still land, after a removal.
    intent_unsure: bool = False


@dataclass
class _Attempt:
    """The LLM calls of one running step attempt."""

    resources: WorkerResources | None
    context: Mapping[str, Any] = field(default_factory=dict)
    calls: list[_Call] = field(default_factory=list)
    # Set after an intent or completion write failed: the ledger is not answering, so
    # this attempt stops putting writes in front of its requests.
    ledger_down: bool = False
    budget: AttemptBudget | None = None
    # Call keys of intents whose request provably got no billed reply (an error status)
    # but whose removal did not reach the ledger (it was down): removed at the attempt's
    # end, or carried with its unwritten usage until the ledger is back. Left alone, they
    # would turn into false lost replies.
    uncancelled: list[str] = field(default_factory=list)
    # The status of calls written from now on: "step_failed" once the attempt has failed
    # (a call still in flight then, e.g. beside a failed one in asyncio.gather, replies
    # after its attempt's end).
    status: Literal["ok", "step_failed"] = "ok"

    def reserve(self, step: str, attempt: int) -> _Call:
        """The next call's index and id, taken before anything is awaited: concurrent
        calls of one attempt (asyncio.gather) never share an id."""
        call = _Call(index=len(self.calls), call_id=f"{step}/{attempt}/{len(self.calls)}")
        self.calls.append(call)
        return call

    @property
    def usages(self) -> list[LLMUsage]:
        """Usage of the calls that got a reply, in the order they were made."""
        return [c.usage for c in self.calls if c.usage is not None]

    @property
    def store(self) -> UsageSink | None:
        if self.resources is None or not self.context or self.ledger_down:
            return None
        return self.resources.store


_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "baton_attempt", default=None
)


def current_sync_threads() -> SyncStepThreads | None:
    """The running worker's sync-step pool (None outside a worker with BatonPlugin)."""
    attempt = _attempt.get()
    resources = attempt.resources if attempt else None
    return resources.sync_threads if resources is not None else None


_Output = TypeVar("_Output", bound=BaseModel)


@overload
async def call_llm(
    job: Job,
    messages: Sequence[Message],
    *,
    model: str | None = None,
    output_type: None = None,
    **params: Any,
) -> LLMResponse: ...


@overload
async def call_llm(
    job: Job,
    messages: Sequence[Message],
    *,
    model: str | None = None,
    output_type: type[_Output],
    output_retries: int = DEFAULT_OUTPUT_RETRIES,
    output_mode: OutputMode = "auto",
    **params: Any,
) -> _Output: ...


async def call_llm(
    job: Job,
    messages: Sequence[Message],
    *,
    model: str | None = None,
    output_type: type[BaseModel] | None = None,
    output_retries: int = DEFAULT_OUTPUT_RETRIES,
    output_mode: OutputMode = "auto",
    **params: Any,
) -> Any:
    """Call an LLM from a step; its usage is recorded in the ledger for this step.

    With ``output_type=MyModel`` (a pydantic model class) it returns a validated
    ``MyModel`` instead of the reply: the provider's native structured output is used
    where the model has one, forced tool use otherwise. A reply that does not validate
    goes back to the model with the error, up to ``output_retries`` (default 2) more
    times, each a billed call recorded in the ledger; then the step fails with a
    non-retryable ``StructuredOutputInvalid``. ``output_mode``: ``"auto"`` (default),
    ``"native"`` or ``"tool"``. See docs/structured-output.md.

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

        verdict = await baton.call_llm(job, messages, model="gpt-4o", output_type=Verdict)
        return verdict  # the step's result is verdict.model_dump(mode="json")
    """
    if output_type is not None:
        label = _model_of(job, model)
        provider, name = resolve_provider(label)

        async def once(conversation: Sequence[Message], **request: Any) -> LLMResponse:
            return await call_llm(job, conversation, model=label, **request)

        return await call_structured(
            once,
            messages,
            output_type=output_type,
            provider=provider,
            model=name,
            label=label,
            retries=output_retries,
            mode=output_mode,
            params=params,
        )
    chosen = _model_of(job, model)
    # A bad api= / stream= is refused before an intent is written or anything is sent.
    check_call_options(chosen, params)
    attempt = _attempt.get()
    # In a batch fan-out step the reply comes from the batch (its usage already recorded).
    # A batched request is priced only when the batch answers, so no worst case can be
    # held for it before it leaves: under a budget cap it is refused, not left uncapped.
    guard = attempt.budget if attempt is not None else None
    if guard is not None and guard.applies and in_batch_step():
        raise ApplicationError(
            f"step {job.step!r} is a batch fan-out under a budget cap; batched calls are "
            "priced only when the batch answers, so the cap cannot hold their worst case "
            "before they leave: drop batch=True for this fan-out, or drop the cap "
            "(budget_usd, BATON_BUDGET_USD) for this flow",
            type=BUDGET_UNSUPPORTED,
            non_retryable=True,
        )
    batched = await batch_reply(job, messages, chosen, params)
    if batched is not None:
        return batched
    resources = attempt.resources if attempt else None
    if resources is not None and resources.llm_error:
        raise ApplicationError(resources.llm_error, type=INVALID_LLM_CONFIG, non_retryable=True)
    call = attempt.reserve(job.step, job.attempt) if attempt is not None else None
    call_id = call.call_id if call is not None else f"{job.step}/{job.attempt}/0"
    # Under a budget cap, the flow holds the call's worst case first, or refuses it.
    hold = None
    if guard is not None and guard.applies and call is not None and resources is not None:
        hold = await guard_call(
            guard,
            index=call.index,
            step=job.step,
            model=chosen,
            messages=messages,
            params=params,
            pricer=resources.budget_pricer(),
        )
    intent = _intent_of(attempt, call, chosen, messages) if attempt and call else None
    if intent is not None and resources is not None:
        _prepare_client(resources, chosen)
    sent = False
    try:
        if attempt is not None and call is not None and intent is not None:
            call.intent_unsure = not await _begin_call(attempt, intent)
        sent = True
        request = complete(
            messages,
            model=chosen,
            config=resources.llm_config if resources else None,
            clients=resources.clients if resources else None,
            call_id=call_id,
            **params,
        )
        # One span per call when tracing is on; when off, the request is awaited as is.
        response = await trace_llm_call(
            resources.tracing if resources else None,
            request,
            model=chosen,
            messages=messages,
            params=params,
            job=job,
            call_id=call_id,
            pricer=resources.store.pricer if resources and resources.store else None,
        )
    except BilledReplyError as err:
        # Billed though unusable (or its usage unbelievable): recorded now, with its usage
        # or marked usage-unknown; the attempt's failure marks it so.
        if attempt is not None and call is not None:
            call.usage = err.usage or unknown_usage(
                err.message, model=chosen, provider=None, call_id=call_id
            )
            await _complete_call(attempt, call)
        if guard is not None and hold is not None:
            # Unknown usage prices to None: the call keeps its worst case.
            settle_call(guard, hold, job.step, _cost_of(resources, err.usage))
        raise
    except UnansweredRequestError:
        # Sent, and no reply read (timeout, connection broken after sending): a provider
        # bills what it received, so the call is kept as a lost reply.
        if attempt is not None and intent is not None:
            await _settle(attempt, _lost(attempt, intent, LOST_NO_ANSWER))
        if guard is not None and hold is not None:
            settle_call(guard, hold, job.step, None)  # may be billed: keeps its worst case
        raise
    except asyncio.CancelledError:
        # Cancelled with the request out: the reply may be billed and is lost. Cancelled
        # while writing the intent: no request left.
        if attempt is not None and intent is not None:
            if sent:
                await _settle(attempt, _lost(attempt, intent, LOST_CANCELLED))
            else:
                await _cancel_intent(attempt, intent, call)
        if guard is not None and hold is not None:
            # A lost reply may be billed: it keeps its worst case.
            settle_call(guard, hold, job.step, None if sent else Decimal(0))
        raise
    except BaseException:
        # No billed reply (an error status, a connection never made, a bad request): the
        # intent goes, so that it is never counted as a lost reply.
        if attempt is not None and intent is not None:
            await _cancel_intent(attempt, intent, call)
        if guard is not None and hold is not None:
            settle_call(guard, hold, job.step, Decimal(0))
        raise
    if guard is not None and hold is not None:
        settle_call(guard, hold, job.step, _cost_of(resources, response.usage))
    if attempt is not None and call is not None:
        call.usage = response.usage
        await _complete_call(attempt, call)
        if resources and resources.store is not None and (job.debug or resources.debug):
            await _save_debug(resources.store, job, response)
    return response


def _cost_of(resources: WorkerResources | None, usage: LLMUsage | None) -> Decimal | None:
    if resources is None or usage is None:
        return None
    return call_cost(resources.budget_pricer(), usage)


def _model_of(job: Job, model: str | None) -> str:
    chosen = model or job.args.get("workflow_model")
    if not isinstance(chosen, str) or not chosen:
        raise ApplicationError(
            f"call_llm in step {job.step!r} has no model: pass model='...' or configure one "
            "for this step with multi_model.configure / fan_out",
            type="UnknownModel",
            non_retryable=True,
        )
    return chosen


def _prepare_client(resources: WorkerResources, model: str) -> None:
    """Build the provider's client (importing its SDK, ~1 s of CPU the first time) before
    the intent is written: a worker killed in that time would leave an intent whose
    request never left. Failures are left for complete() to raise and explain."""
    try:
        provider, _name = resolve_provider(model)
        resources.clients.get(provider, resources.llm_config)
    except Exception:
        log.debug("client for %r not prepared; complete() will say why", model, exc_info=True)


def _prompt_chars(messages: Sequence[Message]) -> int:
    total = 0
    for message in messages if isinstance(messages, Sequence) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(b.get("text") or "") for b in content if isinstance(b, Mapping))
    return total


def _intent_of(
    attempt: _Attempt, call: _Call, model: str, messages: Sequence[Message]
) -> CallIntent | None:
    """The call's intent; None if there is no ledger (or it is down)."""
    if attempt.store is None:
        return None
    ctx = attempt.context
    try:
        return CallIntent(
            workflow_id=ctx["workflow_id"],
            run_id=ctx["run_id"],
            workflow_name=ctx["workflow_name"],
            step=ctx["step"],
            activity_id=ctx["activity_id"],
            attempt=ctx["attempt"],
            call_index=call.index,
            call_id=call.call_id,
            model=model[:256],
            prompt_chars=_prompt_chars(messages),
        )
    except ValueError as err:  # a context the ledger cannot key (no workflow, say)
        log.debug("no intent for call %s: %s", call.call_id, err)
        return None


async def _begin_call(attempt: _Attempt, intent: CallIntent) -> bool:
    """Write the call's intent before its request leaves; False if the write was not
    confirmed. A write that timed out may still land; the intent is then completed,
    removed or marked lost like any other."""
    store = attempt.store
    if store is None:
        return False
    return await _settle(attempt, store.begin_call(intent))


async def _complete_call(attempt: _Attempt, call: _Call) -> None:
    """Write the call's usage now, completing its intent (or the attempt's end does)."""
    store = attempt.store
    if store is None or call.usage is None:
        return
    record = UsageRecord(
        **attempt.context, call_index=call.index, usage=call.usage, status=attempt.status
    )
    call.written = await _settle(attempt, store.record(record))
    if call.written:
        ledger_counters().wrote(1)


async def _lost(attempt: _Attempt, intent: CallIntent, reason: str) -> None:
    store = attempt.store
    if store is not None:
        await store.reconcile(
            workflow_id=intent.workflow_id,
            run_id=intent.run_id,
            activity_id=intent.activity_id,
            call_key=intent.call_key,
            reason=reason,
        )


async def _cancel_intent(attempt: _Attempt, intent: CallIntent, call: _Call | None) -> None:
    """Remove the intent of a call that provably got no billed reply; if the ledger does
    not take it now (or the intent may still land), do it again at the attempt's end (see
    ``_Attempt.uncancelled``)."""
    store = attempt.resources.store if attempt.resources is not None else None
    if store is None:
        return
    removed = not attempt.ledger_down and await _settle(attempt, store.cancel_call(intent.call_key))
    if not removed or (call is not None and call.intent_unsure):
        attempt.uncancelled.append(intent.call_key)


async def _settle(attempt: _Attempt, write: Any, timeout: float = LEDGER_WRITE_TIMEOUT_S) -> bool:
    """Run one ledger write to its end even if the attempt is cancelled meanwhile (the
    cancellation goes on after it); False if it failed, which stops further per-call
    writes in this attempt."""
    task = asyncio.ensure_future(asyncio.wait_for(write, timeout))
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})  # unlike awaiting it, never cancels the write
        except asyncio.CancelledError:
            cancelled = True
    ok = True
    try:
        task.result()
    except TimeoutError:
        # Slow, not down (a loaded machine): the write may still land; the next one is
        # tried as usual, and the attempt's end writes whatever is missing.
        ok = False
        log.warning("a ledger write in front of an LLM call took over %.0f s", timeout)
    except (LedgerError, OSError) as err:
        ok = False
        attempt.ledger_down = True
        log.warning(
            "ledger write in front of an LLM call failed (%s); this attempt's usage is "
            "written when it ends instead",
            err,
        )
    if cancelled:
        raise asyncio.CancelledError()
    return ok


async def _save_debug(store: UsageSink, job: Job, response: LLMResponse) -> None:
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

    An explicit entry is the same call as a captured one only when their ``call_id`` s
    match (``reply.usage`` carries it, so ``llm_usage=[reply.usage]`` counts once). An
    entry without a call_id is a call of its own: equal models or token counts prove
    nothing. Two explicit entries with the same call_id are refused (UsageError): which of
    them is the call cannot be told.
    """
    ids = {u.call_id for u in captured if u.call_id}
    seen: dict[str, int] = {}
    merged = list(captured)
    for i, usage in enumerate(explicit):
        if usage.call_id is not None:
            if usage.call_id in seen:
                raise UsageError(
                    f"llm_usage[{seen[usage.call_id]}] and llm_usage[{i}] have the same "
                    f"call_id {usage.call_id!r}; give each call its own call_id (or none)"
                )
            seen[usage.call_id] = i
            if usage.call_id in ids:
                continue
        merged.append(usage)
    return merged


def _not_from_earlier_attempts(
    explicit: list[LLMUsage], context: Mapping[str, Any]
) -> list[LLMUsage]:
    """``explicit`` without the calls an earlier attempt of this step made (their call_id
    says ``step/attempt/index``): a step that keeps replies across attempts and reports
    them again would count them twice; their own attempt recorded them."""
    step, current = str(context["step"]), int(context["attempt"])
    kept = []
    for usage in explicit:
        parts = (usage.call_id or "").rsplit("/", 2)
        earlier = (
            len(parts) == 3
            and parts[0] == step
            and parts[1].isdigit()
            and parts[2].isdigit()
            and int(parts[1]) < current
        )
        if earlier:
            log.info("llm_usage of %s: call %s was recorded by its attempt", step, usage.call_id)
        else:
            kept.append(usage)
    return kept


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
        context: dict[str, Any] = {
            "workflow_id": info.workflow_id or "-",
            "run_id": info.workflow_run_id or "-",
            "workflow_name": (step_input.workflow_name if step_input else "")
            or info.workflow_type
            or "",
            "step": step_input.step if step_input else info.activity_type,
            "activity_id": info.activity_id,
            "attempt": info.attempt,
        }
        # Usage a previous attempt could not write rides along in its heartbeat details,
        # and so do removals of intents of calls that got no billed reply: those go first,
        # so that the reconciliation below never takes them for lost replies.
        carried = pending_from(info.heartbeat_details)
        if carried and info.attempt > 1:
            carried = await _apply_cancels(resources, carried)
        if self._outbound is not None:
            self._outbound.pending = carried
        attempt = _Attempt(resources, context, budget=_budget_of(resources, step_input, info))
        if info.attempt > 1:
            await _reconcile_earlier(resources, context)
        token = _attempt.set(attempt)
        try:
            result = await self.next.execute_activity(input)
        except BaseException as err:
            _attempt.reset(token)
            attempt.status = "step_failed"
            if attempt.budget is not None:
                await attempt.budget.channel.flush(attempt.budget)
            records = _call_records(attempt, "step_failed")
            pending = carried + await _write(resources, records)
            pending += await _apply_cancels(resources, _cancel_entries(attempt.uncancelled))
            if pending:
                activity.heartbeat({PENDING_USAGE_KEY: pending})
                raise _with_pending(err, pending) from err
            raise
        _attempt.reset(token)
        if attempt.budget is not None:
            await attempt.budget.channel.flush(attempt.budget)  # the calls' settlements
        body = result.result if isinstance(result, StepOutput) else result
        body, raw = split_usage(body)
        try:
            explicit = parse_llm_usage(raw, step=str(context["step"])) if raw else []
            explicit = _not_from_earlier_attempts(explicit, context)
            captured = attempt.usages
            extra = merge_usage(captured, explicit)[len(captured) :]
        except UsageError as err:
            # The calls were made and billed: write what was captured, then refuse.
            pending = carried + await _write(resources, _call_records(attempt, "step_failed"))
            pending += await _apply_cancels(resources, _cancel_entries(attempt.uncancelled))
            raise _with_pending(
                ApplicationError(str(err), type=INVALID_USAGE_ERROR, non_retryable=True),
                pending,
            ) from None
        records = _call_records(attempt, "ok", unwritten_only=True)
        records += [
            UsageRecord(**context, call_index=len(attempt.calls) + i, usage=u, status="ok")
            for i, u in enumerate(extra)
        ]
        pending = carried + await _write(resources, records)
        pending += await _apply_cancels(resources, _cancel_entries(attempt.uncancelled))
        if isinstance(result, StepOutput):
            return StepOutput(
                result=body,
                attempt=result.attempt,
                pending_usage=pending,
                cost_usd=_attempt_cost(resources, [*captured, *extra]),
                model=_attempt_models([*captured, *extra]),
            )
        if pending:
            log.error(
                "ledger unavailable: usage of plain activity %s (%d calls) not recorded; "
                "run LLM calls in @baton.step steps to have it kept until the ledger is back",
                info.activity_type,
                len(pending),
            )
        return body


def _attempt_cost(resources: WorkerResources | None, usages: Sequence[LLMUsage]) -> str | None:
    """What the attempt's calls cost, for the step table the workflow shows; None when it
    made no call or one of them has no price (the ledger row says why)."""
    if resources is None or not usages:
        return None
    total = Decimal(0)
    for usage in usages:
        cost = call_cost(resources.budget_pricer(), usage)
        if cost is None:
            return None
        total += cost
    return str(total)


def _attempt_models(usages: Sequence[LLMUsage]) -> str | None:
    """The models the attempt's calls used, in call order, for the step table (None: no
    call). A step that names its model only in ``call_llm(model=...)`` shows it too."""
    models = list(dict.fromkeys(u.model for u in usages))
    return ", ".join(models) if models else None


def _budget_of(
    resources: WorkerResources | None, step_input: StepInput | None, info: activity.Info
) -> AttemptBudget | None:
    """The attempt's budget: what its flow sent, else the worker's default (None: none)."""
    flow = step_input.budget if step_input is not None else None
    default = resources.budget_usd if resources is not None else None
    if flow is None and default is None:
        return None
    try:
        client = activity.client()
    except RuntimeError:  # a local activity has none; guard_call refuses it a budget
        client = None
    return AttemptBudget(
        client=client,
        channel=resources.budget_channel if resources is not None else BudgetChannel(),
        flow=flow,
        worker_default=default,
        workflow_id=info.workflow_id or "",
        run_id=info.workflow_run_id or "",
        workflow_type=info.workflow_type or "",
        activity_id=info.activity_id,
        attempt=info.attempt,
        is_local=info.is_local,
    )


class _CarryPending(ActivityOutboundInterceptor):
    """Keeps usage inherited from an earlier attempt in this attempt's heartbeats.

    Temporal keeps only the last heartbeat's details, and a step's keep-alive heartbeats
    carry none: without this, an attempt that is lost after it inherited unwritten usage
    (worker killed, attempt timed out) would erase that usage before handing it on, and
    the keep-alive would erase a step's own checkpoint (``activity.heartbeat(details)``).
    """

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        super().__init__(next)
        self.pending: list[dict] = []
        self.last: tuple[Any, ...] = ()

    def heartbeat(self, *details: Any) -> None:
        if details:
            # The step's own details (a checkpoint for its next attempt): the detail-less
            # beats that follow (the keep-alive's, call_llm's) send them again.
            self.last = details
        else:
            details = self.last
        if self.pending and not pending_from(details):
            details = (*details, {PENDING_USAGE_KEY: self.pending})
        super().heartbeat(*details)


def _call_records(
    attempt: _Attempt, status: Any, *, unwritten_only: bool = False
) -> list[UsageRecord]:
    """Records of the attempt's calls that got a reply, keyed by their reserved index.

    A failed attempt sends all of them: the ledger turns rows already written as "ok"
    into "step_failed".
    """
    return [
        UsageRecord(**attempt.context, call_index=c.index, usage=c.usage, status=status)
        for c in attempt.calls
        if c.usage is not None and not (unwritten_only and c.written)
    ]


# A pending entry that is not a usage record: "remove this call's intent, it got no
# billed reply". It travels with unwritten usage (heartbeats, step output, error details)
# to the next attempt or to baton.record_usage, whichever reaches the ledger first.
CANCEL_INTENT_KEY = "baton_cancel_intent"


def _cancel_entries(keys: Sequence[str]) -> list[dict]:
    return [{CANCEL_INTENT_KEY: key} for key in dict.fromkeys(keys)]


def _split_cancels(entries: Sequence[Any]) -> tuple[list[str], list[Any]]:
    """(call keys of intent removals, the usage records) of a pending list."""
    keys, records = [], []
    for entry in entries:
        key = entry.get(CANCEL_INTENT_KEY) if isinstance(entry, Mapping) else None
        if isinstance(key, str):
            keys.append(key)
        else:
            records.append(entry)
    return keys, records


async def _apply_cancels(resources: WorkerResources | None, entries: list[dict]) -> list[dict]:
    """Remove the intents ``entries`` name; return ``entries`` with those that could not
    be removed still in (the usage records in it are passed through untouched)."""
    keys, records = _split_cancels(entries)
    if not keys or resources is None or resources.store is None:
        return entries if keys else records
    try:
        await asyncio.wait_for(resources.store.cancel_calls(keys), LEDGER_WRITE_TIMEOUT_S)
    except (LedgerError, TimeoutError, OSError) as err:
        log.warning("%d intent removal(s) deferred until the ledger is back: %s", len(keys), err)
        return records + _cancel_entries(keys)
    return records


async def _reconcile_earlier(resources: WorkerResources | None, context: Mapping[str, Any]) -> None:
    """Turn the intents the attempts before this one left behind into lost replies.

    An earlier attempt that is still running somewhere can still complete its calls:
    real usage replaces a lost-reply row.
    """
    if resources is None or resources.store is None:
        return
    try:
        lost = await asyncio.wait_for(
            resources.store.reconcile(
                workflow_id=context["workflow_id"],
                run_id=context["run_id"],
                activity_id=context["activity_id"],
                before_attempt=context["attempt"],
            ),
            LEDGER_WRITE_TIMEOUT_S,
        )
    except (LedgerError, TimeoutError, OSError) as err:
        log.warning("orphaned call intents of %s not reconciled yet: %s", context["step"], err)
        return
    if lost:
        log.warning(
            "%d call(s) of an earlier attempt of %s lost their reply (worker stopped); "
            "recorded as lost replies",
            lost,
            context["step"],
        )


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
    except LedgerWriteError as err:
        # The database answered and refused: deferring would retry forever. Each row
        # alone, so one bad row costs only itself; the step's result is kept.
        pending = []
        await _write_one_by_one(resources.store, records, err)
    except (LedgerError, TimeoutError, OSError) as err:
        # Without None fields (all default to None): a worker of the previous release,
        # which may run baton.record_usage during a rolling deploy, does not know the
        # newer ones (usage_unknown) and would refuse them.
        pending = [r.model_dump(mode="json", exclude_none=True) for r in records]
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


async def _write_one_by_one(
    store: UsageSink, records: list[UsageRecord], first: BaseException
) -> None:
    refused = []
    for record in records:
        try:
            await asyncio.wait_for(store.record(record), LEDGER_WRITE_TIMEOUT_S)
        except (LedgerError, TimeoutError, OSError) as error:
            refused.append((record, error))
    for record, reason in refused:
        log.error(
            "ledger refused the usage row of %s (call %s, model %r) and it is NOT recorded: %s",
            record.step,
            record.usage.call_id or record.call_index,
            record.usage.model,
            reason,
        )
    if not refused:
        log.warning("ledger refused a batch (%s) but took every row alone", first)


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
        cancels, records = _split_cancels(records)
        try:
            if cancels:
                # Intents of calls that got no billed reply, removed before any write.
                await resources.store.cancel_calls(cancels)
            written = await resources.store.record(records) if records else 0
        except LedgerWriteError as err:
            # Not an outage: retrying cannot help, and failing would fail the flow
            # with the step's result. Rows are tried alone; refused ones are logged.
            typed = [UsageRecord.model_validate(r) for r in records]
            await _write_one_by_one(resources.store, typed, err)
            return 0
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
