"""The generic DAG workflow: runs any flow given as data (``Flow.to_json``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

from ..flow._options import StepOptions
from ..flow._spec import FLOW_WORKFLOW_TYPE, FlowSpec, StepSpec, parse_flow
from ._quorum import QuorumTracker
from ._runtime import execute_step
from ._wire import FLOW_FAILED_ERROR, INVALID_FLOW_ERROR

__all__ = ["FlowResult", "FlowWorkflow", "StepState"]

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
)
# Scheduled, but no worker of its queue registers the step yet (a rolling deploy).
WAITING = "waiting"


@dataclass
class StepState:
    """A step's live state, as the ``baton.steps`` query and :class:`FlowResult` show it.

    ``state``: pending, running, waiting (for a worker that registers the step; ``error``
    says which queue and until when), completed, failed or cancelled. A quorum's straggler
    that was cancelled once the quorum was met is ``cancelled`` with an ``error`` that
    starts with ``"cancelled: quorum met"``; it does not fail the flow.
    """

    step: str
    state: str = PENDING
    attempt: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class FlowResult:
    """How a flow ended. ``results`` holds every completed step's result by name."""

    workflow_id: str
    workflow_name: str
    results: dict[str, dict[str, Any]]
    steps: dict[str, StepState] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    """Steps that failed for good but whose dependents were allowed to run on."""
    status: str = COMPLETED


# Outside the sandbox: this is library code kept deterministic by review and replay tests,
# and the sandbox re-enters its import guard for every payload the worker converts (about
# a tenth of a worker's CPU at 0 ms models). User-written workflows stay sandboxed.
@workflow.defn(name=FLOW_WORKFLOW_TYPE, sandboxed=False)
class FlowWorkflow:
    """Runs a flow: each step starts once its dependencies are done; independent steps
    run concurrently; failures cascade to dependents unless they ignore them.

    Query ``baton.steps`` for each step's live state. Start from the CLI with::

        temporal workflow start --type baton.Flow --task-queue baton --input "$(cat flow.json)"
    """

    def __init__(self) -> None:
        self._states: dict[str, StepState] = {}
        self._quorum: QuorumTracker | None = None

    @workflow.query(name="baton.steps")
    def steps(self) -> dict[str, StepState]:
        """Each step's state: pending, running, waiting (for a worker that registers the
        step), completed, failed or cancelled."""
        return self._states

    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        try:
            spec = parse_flow(flow)
        except ValueError as err:
            # A malformed flow fails the run at once: retrying cannot fix its input.
            raise ApplicationError(str(err), type=INVALID_FLOW_ERROR, non_retryable=True) from None
        info = workflow.info()
        self._states = {
            s.name: StepState(step=s.step, model=s.args.get("workflow_model")) for s in spec.steps
        }
        results: dict[str, dict[str, Any]] = {}
        done: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in spec.steps}
        limit = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None
        # Quorum steps start at k of n and may cancel stragglers (see _quorum.py).
        self._quorum = quorum = QuorumTracker.for_flow(spec, self._states)
        tasks: dict[str, asyncio.Task[None]] = {}

        async def run_node(node: StepSpec) -> None:
            try:
                await run_node_steps(node)
            except asyncio.CancelledError:
                why = quorum.cancelled_as_straggler(node.name) if quorum else None
                if why is None:
                    raise
                state = self._states[node.name]
                state.state, state.error = CANCELLED, why
                state.ended_at = workflow.now().isoformat()
                done[node.name].set()

        async def run_node_steps(node: StepSpec) -> None:
            if quorum is not None and node.quorum is not None:
                await quorum.wait(node)
            else:
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
            options = StepOptions.from_json(node.options)
            if quorum is not None:
                quorum.started(node, cancel=lambda name: tasks[name].cancel())
                options = quorum.options_for(node, options)
            async with limit or contextlib.nullcontext():
                state.state = RUNNING
                state.started_at = workflow.now().isoformat()
                try:
                    output = await execute_step(
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
                state.ended_at = workflow.now().isoformat()
            done[node.name].set()

        # Tasks made in step order, exactly as gather would make them from the coroutines.
        tasks.update((s.name, asyncio.ensure_future(run_node(s))) for s in spec.steps)
        await asyncio.gather(*tasks.values())
        return self._outcome(spec, info.workflow_id, results)

    def _blocking_deps(self, node: StepSpec) -> list[str]:
        """Dependencies whose outcome stops ``node`` from running (the cascade rule)."""
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
        has_dependents = {d for s in spec.steps for d in s.deps}
        failed = [n for n, s in self._states.items() if s.state == FAILED]
        # Stragglers cancelled once their quorum was met did their part: not a failure.
        superseded = set(self._quorum.stragglers) if self._quorum else set()
        cancelled = [
            n for n, s in self._states.items() if s.state == CANCELLED and n not in superseded
        ]
        # A failure is absorbed when every dependent ran anyway (ignore_failed/quorum);
        # a failed last step, or one that cancelled a dependent, fails the flow.
        fatal = [n for n in failed if n not in has_dependents]
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
        return f"timed out ({cause.type.name if cause.type else 'timeout'})"
    return str(cause or err)


def _label(name: str, step: str) -> str:
    """How the Temporal UI names a node's activity: ``parse (parse_doc)``."""
    return name if name == step else f"{name} ({step})"
