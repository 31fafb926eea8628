"""The flow workflow's scheduler for flows of any size (behind ``patched(BIG_FLOWS)``).

The first scheduler started one asyncio task per step, each waiting on its
dependencies. At 10,000 steps that is 10,000 tasks woken together when a shared
dependency completes: one activation then runs for seconds, Temporal's deadlock detector
fails it (2 s), and evicting the run has 10,000 tasks to cancel. This one keeps a count
of unfinished dependencies per step and a FIFO queue of ready steps, and starts a task
only for a step it admits, so a run holds at most the window's worth of tasks and each
activation does work proportional to what changed.

Admission is :class:`~._window.Window`'s rule (concurrency window, per-task budget);
continue-as-new is :mod:`._continue`'s. Steps become ready and are admitted in flow
order, so replay makes the same choices. A quorum step (with a
:class:`~._quorum.QuorumTracker`) becomes ready as soon as its quorum is decided rather
than when every dependency is done; its stragglers are then cancelled: a running one
through its task, a pending one in place (it never starts). Example::

    scheduler = Scheduler(spec, states, results, execute=run_one, blocking=blocking_deps)
    finished = await scheduler.run()   # False: continue as new with the states so far
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

from ..flow._spec import FlowSpec, StepSpec
from ._continue import history_full
from ._quorum import QuorumTracker
from ._window import DEFAULT_WINDOW, Window, json_size

__all__ = ["Scheduler"]

TERMINAL = ("completed", "failed", "cancelled")
_NEXT_TASK = timedelta(milliseconds=1)


class Scheduler:
    """Runs the steps of ``spec`` that are not yet terminal in ``states``.

    ``execute(node)`` runs one admitted step and records its outcome in ``states`` and
    ``results``; ``blocking(node)`` names the dependencies that cancel it (the cascade
    rule), empty when it may run.
    """

    def __init__(
        self,
        spec: FlowSpec,
        states: dict[str, Any],
        results: dict[str, dict[str, Any]],
        *,
        execute: Callable[[StepSpec], Awaitable[None]],
        blocking: Callable[[StepSpec], list[str]],
        quorum: QuorumTracker | None = None,
    ) -> None:
        self._spec = spec
        self._states = states
        self._results = results
        self._execute = execute
        self._blocking = blocking
        self._window = Window(
            min(spec.max_concurrency or DEFAULT_WINDOW, DEFAULT_WINDOW), budgeted=True
        )
        self._sizes: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._tick: asyncio.Task[None] | None = None
        self._closed = False
        self._in_flight = 0
        self._error: BaseException | None = None
        self._tasks: dict[str, asyncio.Future[None]] = {}  # held so that none is collected
        self._open_steps = 0
        self._ready: deque[StepSpec] = deque()
        self._waiting: dict[str, int] = {}
        self._dependents: dict[str, list[StepSpec]] = {s.name: [] for s in spec.steps}
        self._quorum = quorum
        self._nodes = {s.name: s for s in spec.steps}
        self._released: dict[str, None] = {}  # quorum steps queued before all deps ended
        quorum_steps: list[StepSpec] = []
        for node in spec.steps:
            if states[node.name].state in TERMINAL:
                if quorum is not None and node.quorum is not None:
                    quorum.already_started(node.name)
                continue
            self._open_steps += 1
            pending = [d for d in node.deps if states[d].state not in TERMINAL]
            for d in pending:
                self._dependents[d].append(node)
            if quorum is not None and node.quorum is not None:
                quorum_steps.append(node)
            elif pending:
                self._waiting[node.name] = len(pending)
            else:
                self._ready.append(node)
        # Once every step is placed: releasing one may cancel pending stragglers.
        for node in quorum_steps:
            self._release_if_decided(node)

    async def run(self) -> bool:
        """Run until every step is terminal (True) or the run must continue as new (False)."""
        while True:
            if self._error is not None:
                raise self._error
            self._admit_ready()
            if self._open_steps == 0:
                return True
            if self._closed and self._in_flight == 0:
                return False
            self._wake.clear()
            try:
                await self._wake.wait()
            except asyncio.CancelledError:
                # The run is cancelled: so are its steps in flight (Temporal is asked to
                # cancel their activities), in the order they started.
                for task in list(self._tasks.values()):
                    task.cancel()
                raise

    def _admit_ready(self) -> None:
        while self._ready:
            node = self._ready[0]
            blocked = self._blocking(node)
            if blocked:
                self._ready.popleft()
                state = self._states[node.name]
                state.state = "cancelled"
                state.error = "dependencies did not complete: " + ", ".join(blocked)
                state.ended_at = workflow.now().isoformat()
                self._finished(node)
                continue
            if self._closed or self._in_flight >= self._window.limit:
                return
            if not self._window.charge(self._input_cost(node)):
                # This workflow task's budget is spent: the rest start in the next one,
                # which the next step to finish brings. Only with nothing in flight (local
                # steps finish inside the task) does a timer force it: a timer per task
                # made the server drop completions ("workflow task not found") and evict
                # the run under load.
                if self._in_flight == 0:
                    self._next_task()
                return
            self._ready.popleft()
            self._in_flight += 1
            self._tasks[node.name] = asyncio.ensure_future(self._run_one(node))

    async def _run_one(self, node: StepSpec) -> None:
        try:
            await self._execute(node)
        except asyncio.CancelledError:
            self._tasks.pop(node.name, None)
            why = self._quorum.cancelled_as_straggler(node.name) if self._quorum else None
            if why is None:
                raise  # the run is cancelled or evicted
            # Cancelled as a quorum's straggler while not in an activity (e.g. between
            # two tries of a step no worker registers yet).
            state = self._states[node.name]
            state.state, state.error = "cancelled", why
            state.ended_at = workflow.now().isoformat()
        except Exception as err:
            # Not a step failure (those are recorded as states) but an error of the run
            # itself, e.g. a plain activity run as a step: it fails the run, as before.
            if self._error is None:
                self._error = err
        except BaseException:
            # Cancelled, or the run is being evicted from the worker: it is going away,
            # and workflow calls are no longer allowed.
            self._tasks.pop(node.name, None)
            raise
        self._tasks.pop(node.name, None)
        self._in_flight -= 1
        self._finished(node)
        if not self._closed and history_full(self._spec.max_history_events):
            self._closed = True
        self._wake.set()

    def _finished(self, node: StepSpec) -> None:
        self._open_steps -= 1
        for dependent in self._dependents[node.name]:
            if dependent.name in self._released:
                continue
            if self._states[dependent.name].state in TERMINAL:
                continue  # a pending straggler cancelled before its dependencies ended
            if dependent.quorum is not None and self._quorum is not None:
                self._release_if_decided(dependent)
                continue
            left = self._waiting[dependent.name] - 1
            self._waiting[dependent.name] = left
            if left == 0:
                self._ready.append(dependent)

    def _release_if_decided(self, node: StepSpec) -> None:
        """Queue quorum step ``node`` once k dependencies completed (or k can no longer
        complete: the cascade rule then cancels it), and cancel its stragglers."""
        quorum = self._quorum
        assert quorum is not None
        if node.name in self._released or not quorum.decided(node):
            return
        self._released[node.name] = None
        self._ready.append(node)
        if not self._blocking(node):
            quorum.started(node, cancel=self._cancel_straggler)

    def _cancel_straggler(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            # Running: Temporal is asked to cancel its activity; _run_one ends it.
            task.cancel()
            return
        # Not started yet (waiting for its own dependencies, or for a slot): it never will.
        assert self._quorum is not None
        state = self._states[name]
        state.state = "cancelled"
        state.error = self._quorum.cancelled_as_straggler(name)
        state.ended_at = workflow.now().isoformat()
        node = self._nodes[name]
        if node in self._ready:
            self._ready.remove(node)
        self._finished(node)

    def _input_cost(self, node: StepSpec) -> int:
        sizes = self._sizes
        for d in node.deps:
            if d in self._results and d not in sizes:
                sizes[d] = json_size(self._results[d])
        read = (sizes[d] for d in node.deps if d in self._results)
        return Window.input_cost(json_size(node.args), read)

    def _next_task(self) -> None:
        # One 1 ms timer ends this workflow task; the budget is fresh in the next one.
        if self._tick is None or self._tick.done():
            self._tick = asyncio.ensure_future(workflow.sleep(_NEXT_TASK))
            self._tick.add_done_callback(lambda _: self._wake.set())
