"""The generic DAG workflow: runs any flow given as data (``Flow.to_json``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

from ..flow._budget import BUDGET_EXCEEDED
from ..flow._limits import MAX_SUMMARY_CHARS
from ..flow._spec import FLOW_WORKFLOW_TYPE, FlowSpec, StepSpec
from ._batch import BatchGroup, batch_options_of
from ._budget import BUDGET_QUERY, BUDGET_UPDATE, BudgetBook, check_requests
from ._continue import Carry
from ._details import DetailsTable, cost_of
from ._flow_input import (
    FLOW_FAILURE_EXCEPTION_TYPES,
    NO_INPUT,
    FlowInput,
    fail_run_on,
    one_input_signature,
    read_flow_input,
)
from ._flow_result import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    WAITING,
    FlowResult,
    StepState,
)
from ._quorum import QUORUM_MET, QuorumTracker
from ._runtime import ROUTED_QUEUE_WAIT, execute_step
from ._scheduler import Scheduler
from ._versioning import BATCH_FAN_OUT, BIG_FLOWS, BUDGET_CAPS
from ._wire import FLOW_FAILED_ERROR

__all__ = ["FlowResult", "FlowWorkflow", "StepState"]


# Outside the sandbox: library code, kept deterministic by review and by replaying the
# recorded corpus (tests/histories/) in CI. The sandbox costs ~8.5 ms of worker CPU per
# flow (benchmarks/sandbox.py): replaying 24 recorded flows 9.4 -> 18.0 ms each, the seed
# fan-out run live 62.6 -> 71.0 ms. User-written workflows stay sandboxed.
# Errors of bad data fail the run, never the workflow task (see _flow_input.py).
@workflow.defn(
    name=FLOW_WORKFLOW_TYPE,
    sandboxed=False,
    failure_exception_types=FLOW_FAILURE_EXCEPTION_TYPES,
)
class FlowWorkflow:
    """Runs a flow: each step starts once its dependencies are done; independent steps
    run concurrently; failures cascade to dependents unless they ignore them.

    Query ``baton.steps`` for each step's live state. Start from the CLI with::

        temporal workflow start --type baton.Flow --task-queue baton --input "$(cat flow.json)"
    """

    def __init__(self) -> None:
        self._states: dict[str, StepState] = {}
        self._quorum: QuorumTracker | None = None
        self._budget = BudgetBook()
        self._batches = BatchGroup()  # pools the LLM calls of batch fan-out steps
        self._details = DetailsTable(())  # the step table in the Temporal UI (_details.py)

    # Budget caps (_budget.py): step activities hold each call's worst case, then settle it.
    @workflow.update(name=BUDGET_UPDATE)
    def budget_requests(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self._budget.handle(batch)

    @budget_requests.validator
    def _check_budget_requests(self, batch: dict[str, Any]) -> None:
        check_requests(batch)

    @workflow.query(name=BUDGET_QUERY)
    def budget(self) -> dict[str, Any]:
        """Spend against budget: cap, spent, held for calls in flight, stop reason."""
        return self._budget.view()

    @workflow.query(name="baton.steps")
    def steps(self) -> dict[str, StepState]:
        """Each step's state: pending, running, waiting (for a worker that registers the
        step), completed, failed or cancelled."""
        return self._states

    @workflow.run
    async def run(self, flow: RawValue = NO_INPUT, *more: Any) -> FlowResult:
        # A raw payload, decoded by read_flow_input: input the SDK could not decode would
        # fail the workflow task for ever instead of the run.
        flow_input = read_flow_input(flow, more)
        try:
            return await self._run(flow_input)
        except Exception as err:
            raise fail_run_on(err) from None

    # The SDK decodes a run's inputs by the run method's signature, and hands an input
    # over raw only to a signature of RawValue parameters alone. So it is shown without
    # *more; *more still takes extra inputs, which then fail the run with a message
    # instead of a TypeError.
    run.__signature__ = one_input_signature(run)  # type: ignore[attr-defined]

    async def _run(self, flow_input: FlowInput) -> FlowResult:
        spec = flow_input.spec
        info = workflow.info()
        self._states = {
            s.name: StepState(step=s.step, model=s.args.get("workflow_model")) for s in spec.steps
        }
        self._details = DetailsTable([s.name for s in spec.steps])
        self._details.refresh(self._states)
        results: dict[str, dict[str, Any]] = {}
        self._budget.start(spec.budget_usd, flow_input.options, flow_input.carry.budget)
        if workflow.patched(BIG_FLOWS):
            # Any width and length: a window, a per-task budget, continue-as-new.
            return await self._run_big(flow_input, info.workflow_id)
        done: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in spec.steps}
        limit = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None

        async def run_node(node: StepSpec) -> None:
            for dep in node.deps:
                await done[dep].wait()
            state = self._states[node.name]
            blocked = self._blocking_deps(node)
            if blocked:
                state.state = CANCELLED
                state.error = "dependencies did not complete: " + ", ".join(blocked)
                state.ended_at = workflow.now().isoformat()
                done[node.name].set()
                return
            async with limit or contextlib.nullcontext():
                await self._execute_node(flow_input, node, results)
            done[node.name].set()

        await asyncio.gather(*(run_node(s) for s in spec.steps))
        return self._outcome(spec, info.workflow_id, results)

    async def _run_big(self, flow_input: FlowInput, workflow_id: str) -> FlowResult:
        spec, carry = flow_input.spec, flow_input.carry
        for name, carried in carry.states.items():
            if name in self._states:
                self._states[name] = StepState(**carried)
        results = dict(carry.results)
        # Quorum steps start at k of n and cancel stragglers (_quorum.py); None for a flow
        # without quorum, or a run recorded before QUORUM_EARLY_START.
        self._quorum = QuorumTracker.for_flow(spec, self._states)

        async def execute(node: StepSpec) -> None:
            await self._execute_node(flow_input, node, results)

        scheduler = Scheduler(
            spec,
            self._states,
            results,
            execute=execute,
            blocking=self._blocking_deps,
            quorum=self._quorum,
        )
        if not await scheduler.run():
            states = {n: asdict(s) for n, s in self._states.items()}
            onward = Carry(carry.flow, states, results, carry.runs + 1, self._budget.to_carry())
            workflow.continue_as_new(onward.to_input())
        return self._outcome(spec, workflow_id, results)

    async def _execute_node(
        self, flow_input: FlowInput, node: StepSpec, results: dict[str, dict[str, Any]]
    ) -> None:
        """Run one step whose dependencies allow it; record its state and result."""
        spec = flow_input.spec
        state = self._states[node.name]
        state.state = RUNNING
        state.started_at = workflow.now().isoformat()
        self._details.refresh(self._states)
        options = flow_input.options[node.name]
        quorum = self._quorum
        if quorum is not None:
            options = quorum.options_for(node, options)
        run: Any = execute_step
        batch = batch_options_of(node.fan_out)
        if batch is not None and workflow.patched(BATCH_FAN_OUT):
            run = functools.partial(self._batches.execute, batch=batch)
        try:
            output = await run(
                node.step,
                node.args,
                name=node.name,
                results={d: results[d] for d in node.deps if d in results},
                options=options,
                debug=spec.debug,
                workflow_name=spec.workflow_name,
                # The node's name in the UI. Cheap here: this workflow runs
                # outside the sandbox.
                summary=_label(node.name, node.step),
                on_wait=lambda note: _show_wait(state, note),
                budget=self._budget.for_step(node.name),
            )
        except ActivityError as err:
            why = quorum.cancelled_as_straggler(node.name) if quorum else None
            state.state = CANCELLED if why else FAILED
            state.error = why or _describe(err)
            state.attempt = max(state.attempt, 1)
        else:
            results[node.name] = output.result
            state.state = COMPLETED
            state.attempt = output.attempt
            state.model = state.model or output.model  # the model a call named, if no arg did
            self._details.note_cost(node.name, cost_of(output))
        state.ended_at = workflow.now().isoformat()
        self._details.refresh(self._states)

    def _blocking_deps(self, node: StepSpec) -> list[str]:
        """Dependencies whose outcome stops ``node`` from running (the cascade rule)."""
        stop = self._budget.stop_note()
        if stop is not None and workflow.patched(BUDGET_CAPS):
            return [stop]  # a call was refused for the flow's budget: no new step starts
        states = {d: self._states[d].state for d in node.deps}
        if node.quorum is not None:
            ok = sum(1 for s in states.values() if s == COMPLETED)
            if ok >= node.quorum:
                return []
            return [f"{d} ({s})" for d, s in states.items() if s != COMPLETED] + [
                f"quorum {node.quorum} of {len(node.deps)} not met ({ok} completed)"
            ]
        return [
            f"{d} ({s})"
            for d, s in states.items()
            if (s == FAILED and not node.ignore_failed)
            or (s == CANCELLED and not node.ignore_cancelled)
        ]

    def _outcome(
        self, spec: FlowSpec, workflow_id: str, results: dict[str, dict[str, Any]]
    ) -> FlowResult:
        workflow.set_current_details(self._details.render(self._states))
        has_dependents = {d for s in spec.steps for d in s.deps}
        failed = [n for n, s in self._states.items() if s.state == FAILED]
        # Stragglers cancelled once their quorum was met did their part: not a failure.
        # Told by their error, which a continued run carries over with the states.
        cancelled = [
            n
            for n, s in self._states.items()
            if s.state == CANCELLED and not (s.error or "").startswith(QUORUM_MET)
        ]
        # A failure is absorbed when every dependent ran anyway (ignore_failed/quorum);
        # a failed last step, or one that cancelled a dependent, fails the flow.
        fatal = [n for n in failed if n not in has_dependents]
        if self._budget.refused is not None and (cancelled or failed):
            not_started = self._budget.relabel(self._states)
            raise ApplicationError(
                self._budget.failure_message(spec.workflow_name, not_started),
                {"failed": failed, "cancelled": cancelled, "budget": self._budget.view()},
                type=BUDGET_EXCEEDED,
                non_retryable=True,
            )
        if cancelled or fatal:
            parts = [f"step {n!r} failed: {self._states[n].error}" for n in failed]
            if cancelled:
                parts.append(
                    "cancelled because a dependency did not complete: " + ", ".join(cancelled)
                )
            raise ApplicationError(
                f"flow {spec.workflow_name!r} failed; " + "; ".join(parts),
                {"failed": failed, "cancelled": cancelled},
                type=FLOW_FAILED_ERROR,
                non_retryable=True,
            )
        return FlowResult(
            workflow_id=workflow_id,
            workflow_name=spec.workflow_name,
            results=results,
            steps=dict(self._states),
            failed=failed,
        )


def _show_wait(state: StepState, note: str | None) -> None:
    """``baton status`` shows a step that waits for a worker that registers it."""
    state.state = WAITING if note else RUNNING
    state.error = note


def _describe(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    if isinstance(cause, TimeoutError):
        if cause.type == TimeoutType.SCHEDULE_TO_START:
            return (
                "no worker took it from its task queue within its schedule_to_start_timeout "
                f"({_minutes(ROUTED_QUEUE_WAIT)} unless set, for a step sent to another "
                "queue with options.task_queue): start a worker that polls that queue and "
                "registers the step, or fix the queue name"
            )
        return f"timed out ({cause.type.name if cause.type else 'timeout'})"
    return str(cause or err)


def _minutes(wait: timedelta) -> str:
    return f"{wait.total_seconds() / 60:g} min"


def _label(name: str, step: str) -> str:
    """How the Temporal UI names a node's activity: ``parse (parse_doc)``, cut to fit the
    server's summary size limit (a longer one fails the workflow task)."""
    label = name if name == step else f"{name} ({step})"
    return label if len(label) <= MAX_SUMMARY_CHARS else label[: MAX_SUMMARY_CHARS - 3] + "..."
