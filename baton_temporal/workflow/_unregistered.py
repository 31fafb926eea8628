"""Rolling deploys: a step that no worker of its queue registers waits for one that does.

During a rolling deploy that adds a step, a flow may reach the new step while only old
workers poll the queue. Their catch-all activity answers "not registered here" with a
non-retryable ``UnknownStep`` error that carries how long the workers want such a step to
wait (``BatonPlugin(unregistered_step_wait=...)``, default 10 minutes). The workflow then
sleeps with backoff (1 s, doubling, at most 15 s) and schedules the step again, until a
worker runs it or the wait is over; then the step fails with an error that names the
step, the queue and the fix.

Why the loop lives here, in workflow code, and not in the activity's retry policy: each
new try is a fresh activity whose attempt counter starts at 1, so the user's retry policy
(10 attempts by default) is untouched by the waiting; the wait is bounded by time, not by
attempts; and the flow knows it is waiting, so ``baton status`` can say so.

Example::

    output = await run_until_registered(lambda spent: run(remaining(retry, spent)),
                                        step="summarize",
                                        task_queue="baton", on_wait=show)
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from ._versioning import UNREGISTERED_STEP_WAIT
from ._wire import UNKNOWN_STEP_ERROR, UNREGISTERED_STEP_KEY

__all__ = [
    "DEFAULT_UNREGISTERED_STEP_WAIT",
    "NoEagerRetries",
    "remaining",
    "run_until_registered",
]

T = TypeVar("T")

DEFAULT_UNREGISTERED_STEP_WAIT = timedelta(minutes=10)
_FIRST_DELAY_S = 1.0
# Short enough that a new worker is found soon after it starts; each try costs ~5
# history events, so 10 minutes of waiting stays under ~250 events.
_MAX_DELAY_S = 15.0
SETTING_HINT = (
    "BatonPlugin(unregistered_step_wait=...) or BATON_UNREGISTERED_STEP_WAIT_S on the workers"
)


# Set (in the step's own asyncio task only) while a try after the first is scheduled.
_not_eager: contextvars.ContextVar[bool] = contextvars.ContextVar("baton_not_eager", default=False)


class NoEagerRetries(Interceptor):
    """Installed by ``BatonPlugin``: the tries of a step that waits for a worker that
    registers it are scheduled without eager execution (temporalio's
    ``execute_activity`` has no per-call switch for it)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        if _not_eager.get():
            input.disable_eager_execution = True
        return super().start_activity(input)


@dataclass(frozen=True)
class Unregistered:
    """What the catch-all activity said about a step it does not know."""

    step: str
    task_queue: str
    wait_seconds: float
    hint: str = ""
    attempt: int = 1
    """The attempt of the step's retry policy that reached this worker: above 1, workers
    that do register the step ran (and failed) the attempts before it."""


def unregistered(err: BaseException, task_queue: str) -> Unregistered | None:
    """The step that ``err`` says no worker registers, or None for any other error."""
    if not isinstance(err, ActivityError):
        return None
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != UNKNOWN_STEP_ERROR:
        return None
    info: dict[str, Any] = {}
    for item in cause.details or ():
        if isinstance(item, dict) and isinstance(item.get(UNREGISTERED_STEP_KEY), dict):
            info = item[UNREGISTERED_STEP_KEY]
    wait = info.get("wait_seconds")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        # A worker of an earlier release sends no setting: use the default.
        wait = DEFAULT_UNREGISTERED_STEP_WAIT.total_seconds()
    return Unregistered(
        step=str(info.get("step") or err.activity_type),
        task_queue=str(info.get("task_queue") or task_queue),
        wait_seconds=float(wait),
        hint=str(info.get("hint") or ""),
        attempt=int(info["attempt"]) if isinstance(info.get("attempt"), int) else 1,
    )


async def run_until_registered(
    attempt: Callable[[int], Awaitable[T]],
    *,
    step: str,
    task_queue: str,
    on_wait: Callable[[str | None], None] | None = None,
) -> T:
    """``await attempt(spent)``, again with backoff while no worker registers the step.

    ``spent`` counts the attempts of the step's own retry policy that workers which do
    register it have already used (and failed): mid-rollout an old worker may answer
    attempt 3 of a step that new workers ran twice. The caller schedules the next try
    with that many fewer attempts, so the waiting neither spends nor renews the budget.

    The tries after the first are scheduled without eager execution (see
    :class:`NoEagerRetries`): eagerly, the activity would go straight back to the worker
    that runs this workflow, an old one, instead of to any worker of the queue.

    ``on_wait(note)`` is told when the step starts waiting (a note saying for what and
    until when) and when it is scheduled again (None).
    """
    deadline = None
    delay = _FIRST_DELAY_S
    spent = 0
    while True:
        try:
            if deadline is None:
                return await attempt(spent)
            token = _not_eager.set(True)
            try:
                return await attempt(spent)
            finally:
                _not_eager.reset(token)
        except ActivityError as err:
            missing = unregistered(err, task_queue)
            if missing is None:
                raise
            if missing.wait_seconds <= 0:
                raise _same_activity(err) from _gave_up(missing)
            if deadline is None:
                if not workflow.patched(UNREGISTERED_STEP_WAIT):
                    raise  # a run recorded before: it failed here at once
                deadline = workflow.now() + timedelta(seconds=missing.wait_seconds)
            spent += missing.attempt - 1
            if missing.attempt > 1:
                # A worker that registers the step ran its earlier attempts: the rollout
                # is under way, so try again soon rather than after a long backoff.
                delay = _FIRST_DELAY_S
            left = (deadline - workflow.now()).total_seconds()
            if left <= 0:
                raise _same_activity(err) from _gave_up(missing)
            if on_wait is not None:
                on_wait(
                    f"waiting for a worker of task queue {missing.task_queue!r} that registers "
                    f"step {missing.step!r}{missing.hint} (a rolling deploy?); trying again until "
                    f"{deadline:%Y-%m-%d %H:%M:%S} UTC"
                )
            await workflow.sleep(min(delay, left))
            delay = min(delay * 2, _MAX_DELAY_S)
            if on_wait is not None:
                on_wait(None)


def remaining(policy: RetryPolicy, spent: int) -> RetryPolicy:
    """``policy`` less the ``spent`` attempts (at least one left; 0 stays unlimited)."""
    if spent <= 0 or policy.maximum_attempts <= 0:
        return policy
    return replace(policy, maximum_attempts=max(1, policy.maximum_attempts - spent))


def _gave_up(missing: Unregistered) -> ApplicationError:
    """The step's final error: what is missing where, how long it waited, what to do."""
    waited = (
        f"no worker that registers it appeared within {_duration(missing.wait_seconds)}"
        if missing.wait_seconds > 0
        else "the workers are set not to wait for one"
    )
    message = (
        f"no step named {missing.step!r} is registered on the workers of task queue "
        f"{missing.task_queue!r}{missing.hint}, and {waited}; deploy workers that register "
        "it (decorate the function with @baton.step and pass it to BatonPlugin(steps=[...]) "
        "on every worker of that queue), or fix the step name in the flow. How long a step "
        f"waits for such a worker: {SETTING_HINT}"
    )
    return ApplicationError(message, type=UNKNOWN_STEP_ERROR, non_retryable=True)


def _same_activity(err: ActivityError) -> ActivityError:
    """A copy of ``err`` (the activity's failure) to carry a new cause."""
    return ActivityError(
        err.message,
        scheduled_event_id=err.scheduled_event_id,
        started_event_id=err.started_event_id,
        identity=err.identity,
        activity_type=err.activity_type,
        activity_id=err.activity_id,
        retry_state=err.retry_state,
    )


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} s"
