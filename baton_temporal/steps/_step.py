"""``@baton.step``: turn a function of a :class:`Job` into a Temporal activity."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import traceback
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, overload

from pydantic import BaseModel
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ..flow._errors import FanInError, NotADependencyError
from ..flow._json import find_non_json
from ..flow._limits import MAX_JSON_DEPTH, heartbeat_problem
from ..flow._options import StepOptions
from ..llm._beats import first_beat_in, start_lag
from ..logs import STEP_ATTRIBUTE
from ..workflow._wire import (
    FAN_IN_ERROR,
    STEP_RESULT_ERROR,
    UNPRINTABLE_ERROR,
    StepInput,
    StepOutput,
)
from ._accounting import current_sync_threads
from ._batch import BatchDeferred, start_batch_run
from ._job import Job

log = logging.getLogger("baton_temporal")

__all__ = ["Step", "step"]

StepFunction = (
    Callable[[Job], Awaitable[dict[str, Any] | BaseModel]]
    | Callable[[Job], dict[str, Any] | BaseModel]
)

# Temporal rejects payloads over 2 MB; a result that large fails every retry the same way,
# so it is refused at once with a message instead of being retried.
MAX_RESULT_BYTES = 2 * 1024 * 1024 - 16 * 1024


@dataclass(frozen=True)
class Step:
    """A step: a function of a :class:`Job`, registered as a Temporal activity.

    Made with :func:`step`; pass it to :meth:`Flow.add` and to ``BatonPlugin(steps=...)``.
    Calling it directly runs the function (handy in unit tests)::

        result = await parse_doc(baton.Job(step="parse", args={"text": "..."},
                                           workflow_id="t", workflow_name="t"))
    """

    name: str
    """The Temporal activity type; what a flow's JSON names in ``"step"``."""
    fn: Callable[..., Any] = field(repr=False)
    options: StepOptions = field(default_factory=StepOptions)
    activity: Callable[[StepInput], Awaitable[StepOutput]] = field(
        default=None, repr=False, compare=False
    )  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "activity", _make_activity(self.name, self.fn))

    async def __call__(self, job: Job) -> dict[str, Any]:
        result = self.fn(job)
        if inspect.isawaitable(result):
            result = await result
        return result


@overload
def step(fn: StepFunction, /) -> Step: ...
@overload
def step(
    *,
    name: str | None = None,
    start_to_close_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    task_queue: str | None = None,
    local: bool | None = None,
    heartbeat_timeout: timedelta | None = None,
) -> Callable[[StepFunction], Step]: ...
def step(
    fn: StepFunction | None = None,
    /,
    *,
    name: str | None = None,
    start_to_close_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    task_queue: str | None = None,
    local: bool | None = None,
    heartbeat_timeout: timedelta | None = None,
) -> Step | Callable[[StepFunction], Step]:
    """Declare a step. Async functions run on the worker's event loop, plain functions in
    a thread (so blocking code does not stall other steps).

    Example::

        @baton.step
        async def parse_doc(job: baton.Job) -> dict:
            return {"sections": job.args["text"].split("\\n\\n")}

        @baton.step(name="render", local=True)
        def render_report(job: baton.Job) -> dict:
            return {"markdown": "..."}
    """
    options = StepOptions(
        start_to_close_timeout=start_to_close_timeout,
        retry_policy=retry_policy,
        task_queue=task_queue,
        local=local,
        heartbeat_timeout=heartbeat_timeout,
    )
    # A warning, not an error: a worker importing this module after an upgrade must still
    # start and serve the runs in flight; Flow.add refuses new flows that use it (and
    # checks again if a node makes a local step non-local).
    too_short = heartbeat_problem("heartbeat_timeout", heartbeat_timeout, local=local)
    if too_short:
        warnings.warn(
            f"@baton.step: {too_short}; flows that use this step are refused when built",
            UserWarning,
            stacklevel=2,
        )

    def wrap(f: StepFunction) -> Step:
        if isinstance(f, Step):
            raise TypeError(f"{f.name!r} is already a step; apply @baton.step once")
        if not callable(f):
            raise TypeError(f"@baton.step needs a function, got {type(f).__name__}")
        params = inspect.signature(f).parameters
        if len(params) != 1:
            raise TypeError(
                f"step function {f.__qualname__} must take exactly one argument, the job "
                f"(async def {f.__name__}(job: baton.Job) -> dict); it takes {len(params)}"
            )
        return Step(name=name or f.__name__, fn=f, options=options)

    return wrap(fn) if fn is not None else wrap


def _make_activity(
    name: str, fn: Callable[..., Any]
) -> Callable[[StepInput], Awaitable[StepOutput]]:
    is_async = inspect.iscoroutinefunction(fn)

    async def run_step_activity(input: StepInput) -> StepOutput:
        info = activity.info()
        # A batch fan-out step (workflow/_batch.py): its replies ride in a reserved arg.
        args, batch = start_batch_run(input)
        job = Job(
            step=input.step,
            args=args,
            workflow_id=info.workflow_id or "",
            workflow_name=input.workflow_name or info.workflow_type or "",
            run_id=info.workflow_run_id or "",
            attempt=info.attempt,
            results=input.results,
            debug=input.debug,
        )
        # Heartbeat while the step runs, so that a worker that dies is noticed within the
        # heartbeat timeout (and the step retried elsewhere), not after start_to_close.
        timeout = None if info.is_local else info.heartbeat_timeout
        lag = start_lag(info) if timeout else 0.0
        keep_alive = asyncio.create_task(_heartbeat_every(timeout, lag)) if timeout else None
        try:
            if timeout and lag >= timeout.total_seconds():
                await _confirm_alive(input.step, timeout, lag)
            if is_async:
                result = await fn(job)
            else:
                # The worker's own pool (sized from its activity slots), so that steps
                # overrunning their timeout cannot starve other sync steps; both copy the
                # context, so activity.info() and heartbeats work in the thread.
                threads = current_sync_threads()
                if threads is not None:
                    limit = info.start_to_close_timeout
                    result = await threads.run(
                        fn,
                        job,
                        step=input.step,
                        timeout=limit.total_seconds() if limit else None,
                    )
                else:
                    result = await asyncio.to_thread(fn, job)
        except BatchDeferred:
            assert batch is not None
            return StepOutput(result=batch.deferred_result(), attempt=info.attempt)
        except NotADependencyError as err:
            # A flow wiring mistake: every retry would fail the same way.
            raise ApplicationError(str(err), type="NotADependency", non_retryable=True) from None
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is None or not details.not_found:
                raise
            # Its run has ended (a quorum straggler whose flow completed): nobody will read
            # this outcome, so it leaves no traceback in the worker's log.
            raise ApplicationError(
                f"step {input.step!r} stopped: its workflow run has ended",
                type="StepAbandoned",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from None
        except FanInError as err:
            # The multi-model helpers read the dependencies' results, which are fixed.
            raise ApplicationError(str(err), type=FAN_IN_ERROR, non_retryable=True) from None
        except Exception as err:
            if batch is not None and batch.requests:
                # A deferred call's BatchDeferred was caught by the step (e.g. gather(...,
                # return_exceptions=True)) and it failed on that: its calls go to the batch
                # and it runs again with their replies.
                return StepOutput(result=batch.deferred_result(), attempt=info.attempt)
            unprintable = _unprintable(err)
            if unprintable is not None:
                raise unprintable from None
            # The console's one line per failed attempt names the flow's step, not the
            # activity (a fan-out's "assess_gpt_4o" runs "assess"); see logs.py.
            with contextlib.suppress(Exception):
                setattr(err, STEP_ATTRIBUTE, input.step)
            raise  # the user's own error: retried as the step's retry policy says
        finally:
            if keep_alive is not None:
                keep_alive.cancel()
        if batch is not None and batch.requests:
            # It returned though a call was deferred (it caught the BatchDeferred): its
            # result was made without that reply, so the calls go to the batch first.
            return StepOutput(result=batch.deferred_result(), attempt=info.attempt)
        return StepOutput(
            result=check_result(input.step, result, limited=not PAYLOAD_STORE_ON.get()),
            attempt=info.attempt,
        )

    # Not functools.wraps: its __wrapped__ would make Temporal read the user's signature.
    run_step_activity.__doc__ = fn.__doc__
    run_step_activity.__name__ = run_step_activity.__qualname__ = f"baton_step_{name}"
    return activity.defn(name=name)(run_step_activity)


def _unprintable(err: BaseException) -> ApplicationError | None:
    """A clear, non-retryable error if ``err`` (or an exception it chains to) cannot be
    turned into text; else None.

    Temporal's failure converter calls ``str()`` on the exception and its causes; if that
    raises, the attempt's failure is never reported and the step waits out its heartbeat
    or start-to-close timeout, then retries into the same wall.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < 100:
        seen.add(id(current))
        try:
            str(current)
            "".join(traceback.format_exception_only(type(current), current))
        except Exception as inner:
            name = type(current).__name__
            try:
                why = f"{type(inner).__name__}: {inner}"
            except Exception:
                why = type(inner).__name__
            return ApplicationError(
                f"the step raised {name}, whose message cannot be shown (str() raised "
                f"{why}); fix {name}.__str__ (or raise an exception with a plain message)",
                type=UNPRINTABLE_ERROR,
                non_retryable=True,
            )
        if isinstance(current, ApplicationError) and current.details:
            try:
                activity.payload_converter().to_payloads(current.details)
            except Exception as inner:
                return ApplicationError(
                    f"the step raised ApplicationError({current.message!r}) whose details "
                    f"cannot be sent ({type(inner).__name__}); pass only JSON values as "
                    "its details",
                    type=UNPRINTABLE_ERROR,
                    non_retryable=True,
                )
        current = current.__cause__ or current.__context__
    return None


async def _heartbeat_every(timeout: timedelta, lag: float) -> None:
    # Every third of the timeout; the first no later than two thirds of it after Temporal
    # started the attempt (see llm/_beats.py), so that a step that starts late still beats
    # in time, and a short step on time ends before it costs a heartbeat round trip.
    seconds = _keep_alive_interval(timeout)
    first = first_beat_delay(timeout, lag)
    if first > 0:
        await asyncio.sleep(first)
    while True:
        activity.heartbeat()
        await asyncio.sleep(seconds)


def first_beat_delay(timeout: timedelta, lag: float) -> float:
    """Seconds from the step's code starting to its first heartbeat (0: at once).

    A third of the timeout (at least 0.1 s: no busy loop), but no later than two thirds
    of the timeout after Temporal started the attempt (see llm/_beats.py). Both count
    from the timeout itself, not from the beat interval: below 0.3 s two intervals of
    0.1 s would pass the server's deadline.
    """
    return first_beat_in(timeout, interval=_keep_alive_interval(timeout), lag=lag)


def _keep_alive_interval(timeout: timedelta) -> float:
    return max(timeout.total_seconds() / 3, 0.1)


# How long a step that starts after its heartbeat timeout has passed waits to hear
# whether Temporal still runs this attempt (a heartbeat answer takes milliseconds).
LATE_START_CHECK_S = 5.0


async def _confirm_alive(step: str, timeout: timedelta, lag: float) -> None:
    """Before a step that started later than its heartbeat timeout does anything billable,
    learn whether Temporal has already timed this attempt out and started the next one.

    The keep-alive task's first heartbeat is already on its way; an attempt the server no
    longer knows is cancelled (not found) when its answer comes back, and the step then
    ends as abandoned, before its LLM calls, instead of paying for replies nobody reads.
    If no cancellation comes (the clocks differ, or the server still runs the attempt),
    the step goes on.
    """
    log.info(
        "step %r started %.1f s after Temporal started it (heartbeat timeout %s); checking "
        "that this attempt is still current before running it",
        step,
        lag,
        timeout,
    )
    await asyncio.sleep(min(LATE_START_CHECK_S, _keep_alive_interval(timeout)))


# Set by BatonPlugin's activity interceptor when the worker has a payload store
# (baton_temporal.payloads): then a result of any size is normal data.
PAYLOAD_STORE_ON: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "baton_payload_store_on", default=False
)


def _usage_as_json(result: dict[str, Any]) -> dict[str, Any]:
    """``llm_usage`` may hold ``reply.usage`` objects as they are (the way to report a
    call once, by its call_id): they go on as their JSON dump."""
    usage = result.get("llm_usage")
    if isinstance(usage, BaseModel):
        return {**result, "llm_usage": usage.model_dump(mode="json")}
    if isinstance(usage, list) and any(isinstance(u, BaseModel) for u in usage):
        dumped = [u.model_dump(mode="json") if isinstance(u, BaseModel) else u for u in usage]
        return {**result, "llm_usage": dumped}
    return result


def check_result(step: str, result: Any, *, limited: bool = True) -> dict[str, Any]:
    """Refuse, non-retryably, a result that no retry could make acceptable.

    ``limited``: also refuse results over 2 MB (no payload store on this worker).
    """
    if result is None:
        return {}
    if isinstance(result, BaseModel):
        # A structured output returned as it is (call_llm(output_type=...)): its JSON dump.
        result = result.model_dump(mode="json")
    if not isinstance(result, dict):
        raise ApplicationError(
            f"step {step!r} returned {type(result).__name__}; a step must return a dict "
            "(JSON object) such as {'value': ...}",
            type=STEP_RESULT_ERROR,
            non_retryable=True,
        )
    result = _usage_as_json(result)
    # find_non_json walks without recursion and refuses cycles and deep nesting too.
    problem = find_non_json(result)
    if problem:
        raise ApplicationError(
            f"step {step!r} returned a result that is not JSON: {problem}; return only "
            f"str, int, float, bool, None, lists and dicts with string keys, nested at most "
            f"{MAX_JSON_DEPTH} deep",
            type=STEP_RESULT_ERROR,
            non_retryable=True,
        )
    size = len(json.dumps(result, separators=(",", ":"))) if limited else 0
    if size > MAX_RESULT_BYTES:
        raise ApplicationError(
            f"step {step!r} returned {size:,} bytes of JSON; Temporal refuses payloads "
            "over 2 MB. Turn on baton's payload store (unset BATON_PAYLOAD_STORE=off, or "
            "pass BatonPlugin(payload_store=...)), or store large data elsewhere and "
            "return a reference to it",
            type=STEP_RESULT_ERROR,
            non_retryable=True,
        )
    return result
