"""Running steps from workflow code: the one code path of both ways in.

The generic flow workflow is written with these helpers, and so can any hand-written
``@workflow.defn`` class::

    @workflow.defn
    class Brief:
        @workflow.run
        async def run(self, url: str) -> dict:
            fetched = await baton.run_step(fetch_sources, {"url": url}, name="fetch")
            summary, keywords = await asyncio.gather(
                baton.run_step(summarize, name="summarize", results={"fetch": fetched}),
                baton.run_step(keywords, name="keywords", results={"fetch": fetched}),
            )
            return await baton.run_step(compile_brief, name="compile",
                                        results={"summarize": summary, "keywords": keywords})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from ..flow._options import (
    DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_RETRY,
    DEFAULT_START_TO_CLOSE,
    StepOptions,
    StepRef,
)
from ._unregistered import remaining, run_until_registered
from ._wire import (
    RECORD_USAGE_ACTIVITY,
    STEP_RESULT_ERROR,
    StepInput,
    StepOutput,
    pending_from_error,
)

__all__ = ["ROUTED_QUEUE_WAIT", "run_step"]

# How long a step routed to another task queue waits for a worker there to take it.
ROUTED_QUEUE_WAIT = timedelta(minutes=10)

# Usage that the step activity could not write (ledger down) is retried until it lands:
# the record is in Temporal history, so nothing is lost and the LLM call is not re-run.
_RECORD_USAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)


async def run_step(
    step: StepRef | str,
    args: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    results: Mapping[str, Any] | None = None,
    options: StepOptions | None = None,
    debug: bool = False,
    summary: str | None = None,
) -> dict[str, Any]:
    """Run one step as a Temporal activity from workflow code; return its result.

    ``name`` is the step's name in this workflow (default: the step's own name);
    ``results`` are what the step's :func:`get_result` can read; ``args`` are its
    :attr:`Job.args`. ``summary`` labels the activity in the Temporal UI (none by
    default, as in Temporal: in a sandboxed workflow each label costs ~0.4 ms of worker
    CPU per step). Raises ``temporalio.exceptions.ActivityError`` if the step fails
    for good.

    Example::

        parsed = await baton.run_step(parse_doc, {"text": text}, name="parse",
                                      summary="parse the upload")
    """
    output = await execute_step(
        step, args, name=name, results=results, options=options, debug=debug, summary=summary
    )
    return output.result


async def execute_step(
    step: StepRef | str,
    args: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    results: Mapping[str, Any] | None = None,
    options: StepOptions | None = None,
    debug: bool = False,
    workflow_name: str | None = None,
    summary: str | None = None,
    on_wait: Callable[[str | None], None] | None = None,
    budget: dict[str, Any] | None = None,
) -> StepOutput:
    """:func:`run_step`, returning the whole :class:`StepOutput` (result and attempt).

    ``on_wait(note)`` hears when the step waits for a worker that registers it (a
    rolling deploy, see _unregistered.py), and None when it is scheduled again.
    ``budget``: the caps and spend the step's calls are checked against (_budget.py)."""
    if isinstance(step, StepRef):
        activity_type, step_defaults = step.name, step.options
    else:
        activity_type, step_defaults = step, StepOptions()
    opts = (options or StepOptions()).merged_over(step_defaults)
    if opts.budget_usd is not None and budget is None:
        # Only the flow workflow keeps a budget book; silently uncapped calls would be worse.
        raise ApplicationError(
            f"step {name or activity_type!r} has budget_usd, which only flows built with "
            "baton.new(...) enforce; a hand-written workflow cannot: drop budget_usd from "
            "its options, or run the steps as a flow",
            type="BudgetUnsupported",
            non_retryable=True,
        )
    input = StepInput(
        step=name or activity_type,
        args=dict(args or {}),
        workflow_name=workflow_name or workflow.info().workflow_type,
        results=dict(results or {}),
        debug=debug,
        budget=budget,
    )
    timeout = opts.start_to_close_timeout
    if timeout is None and opts.schedule_to_close_timeout is None:
        timeout = DEFAULT_START_TO_CLOSE
    retry = opts.retry_policy or DEFAULT_RETRY
    try:
        output = await run_until_registered(
            lambda spent: _execute(
                activity_type, input, opts, timeout, remaining(retry, spent), summary
            ),
            step=input.step,
            task_queue=opts.task_queue or workflow.info().task_queue,
            on_wait=on_wait,
        )
    except ActivityError as err:
        # A failed attempt that called a model while the ledger was down carries its
        # usage records in the error; write them before reporting the failure.
        pending = pending_from_error(err.cause)
        if pending:
            await _record_pending(pending, input.step)
        raise
    if output.pending_usage:
        await _record_pending(output.pending_usage, input.step)
    return output


async def _record_pending(records: list[dict[str, Any]], step: str) -> None:
    await workflow.execute_activity(
        RECORD_USAGE_ACTIVITY,
        records,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=_RECORD_USAGE_RETRY,
        summary=f"record usage of {step}",
    )


async def _execute(
    activity_type: str,
    input: StepInput,
    opts: StepOptions,
    timeout: timedelta | None,
    retry: RetryPolicy,
    summary: str | None,
) -> StepOutput:
    # The wire JSON is StepInput's / StepOutput's, but converted by hand: the default
    # converter deep-copies a dataclass (asdict) and resolves its type hints on every
    # decode, work that the workflow sandbox makes dearer still.
    arg = vars(input)
    if arg.get("budget") is None:  # steps without a cap send what they always sent
        arg = {k: v for k, v in arg.items() if k != "budget"}
    if opts.local:
        raw = await workflow.execute_local_activity(
            activity_type,
            arg,
            start_to_close_timeout=timeout,
            schedule_to_close_timeout=opts.schedule_to_close_timeout,
            retry_policy=retry,
            summary=summary,
        )
    else:
        raw = await workflow.execute_activity(
            activity_type,
            arg,
            start_to_close_timeout=timeout,
            schedule_to_close_timeout=opts.schedule_to_close_timeout,
            schedule_to_start_timeout=_pickup_wait(opts),
            heartbeat_timeout=opts.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT,
            retry_policy=retry,
            task_queue=opts.task_queue,
            summary=summary,
        )
    return _step_output(input.step, activity_type, raw)


def _pickup_wait(opts: StepOptions) -> timedelta | None:
    """How long a step may wait for a worker to take it: the step's own
    ``schedule_to_start_timeout``, else a bound only for a step sent to another queue.

    A queue that no worker polls (a typo in ``options.task_queue``, a pool that was never
    deployed) would leave the step scheduled, and the run RUNNING, for ever. The run's own
    queue needs no bound: no worker there means the flow itself is not running either,
    and a deploy brings them back together. Only the wait before the first pick-up is
    bounded; a step that has started is timed by its own timeouts. Temporal does not
    retry a schedule-to-start timeout, so the step fails and the flow says why.
    """
    if opts.schedule_to_start_timeout is not None:
        return opts.schedule_to_start_timeout
    if opts.task_queue is None or opts.task_queue == workflow.info().task_queue:
        return None
    return ROUTED_QUEUE_WAIT


def _step_output(step: str, activity_type: str, raw: Any) -> StepOutput:
    """The :class:`StepOutput` a step activity sent, checked."""
    if isinstance(raw, dict) and isinstance(raw.get("result"), dict):
        return StepOutput(
            result=raw["result"],
            attempt=raw.get("attempt", 1),
            pending_usage=raw.get("pending_usage") or [],
            # What the attempt's calls cost: the Temporal UI's step table shows it.
            cost_usd=cost if isinstance(cost := raw.get("cost_usd"), str) else None,
            model=model if isinstance(model := raw.get("model"), str) else None,
        )
    # Failing the workflow task instead would retry it forever.
    raise ApplicationError(
        f"step {step!r}: activity {activity_type!r} returned {type(raw).__name__}, not a "
        "baton step output; register the function with @baton.step (a plain "
        "@activity.defn cannot be run as a step)",
        type=STEP_RESULT_ERROR,
        non_retryable=True,
    )
