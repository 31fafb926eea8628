"""Quorum steps in the generic flow workflow: start at k of n, then settle the stragglers.

A step with ``quorum=k`` starts as soon as k of its dependencies completed (or is
cancelled as soon as k can no longer complete). The dependencies still pending or running
at that moment are its *stragglers*. By default each straggler is cancelled (a Temporal
activity cancellation: the flow moves on at once, the activity sees it at its next
heartbeat), but only when nothing else still needs it: a straggler is cancelled only if
every step that depends on it is a quorum step that has already started and cancels its
stragglers. A step that depends on a straggler directly therefore still gets its result,
and ``cancel_stragglers=False`` on the quorum step lets them all finish.

A cancelled straggler ends in state ``cancelled`` with the error
``"cancelled: quorum met (...)"``; unlike a cascade cancellation it does not fail the flow.

The flow workflow's scheduler (_scheduler.py) asks :meth:`QuorumTracker.decided` each
time a dependency of a quorum step finishes, instead of waiting for all of them, and
calls :meth:`QuorumTracker.started` when it queues the step (before the step gets a slot
of the concurrency window, so a straggler holding the only slot is cancelled too). A
continued run (continue-as-new) rebuilds the tracker from the carried states: cancelled
stragglers keep their state and error, and a quorum step already met is met again.

Example (what the scheduler does)::

    tracker = QuorumTracker.for_flow(spec, states)   # None: no quorum step, or an old run
    if tracker.decided(node):                         # instead of waiting for every dep
        tracker.started(node, cancel=cancel_straggler)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow

from ..flow._options import StepOptions
from ..flow._spec import FlowSpec, StepSpec
from ._versioning import QUORUM_EARLY_START

__all__ = ["QUORUM_MET", "STRAGGLER_HEARTBEAT_TIMEOUT", "QuorumTracker"]

QUORUM_MET = "cancelled: quorum met"
# Steps that may be cancelled as stragglers heartbeat every third of this (their
# keep-alive), and Temporal delivers a cancellation only with a heartbeat's reply: the
# default 30 s would let a cancelled straggler run (and bill) for up to ~25 s more.
STRAGGLER_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Not finished yet: a step waiting for a worker that registers it may still complete.
_OPEN = ("pending", "running", "waiting")


class _State(Protocol):
    state: str
    error: str | None
    ended_at: str | None


class QuorumTracker:
    """Decides when quorum steps start and which stragglers to cancel."""

    def __init__(self, spec: FlowSpec, states: Mapping[str, _State]) -> None:
        self._nodes = {s.name: s for s in spec.steps}
        self._states = states
        self._dependents: dict[str, list[str]] = {s.name: [] for s in spec.steps}
        for s in spec.steps:
            for dep in s.deps:
                self._dependents[dep].append(s.name)
        self._started: set[str] = set()  # quorum steps whose quorum was met
        self._cancelled: dict[str, str] = {}  # straggler -> why it was cancelled

    @classmethod
    def for_flow(cls, spec: FlowSpec, states: Mapping[str, _State]) -> QuorumTracker | None:
        """A tracker when the flow has a quorum step and the run is new enough for it.

        ``patched`` is asked once, before any command, and only by flows with a quorum:
        other flows' histories stay as they were.
        """
        if not any(s.quorum is not None for s in spec.steps):
            return None
        if not workflow.patched(QUORUM_EARLY_START):
            return None  # recorded before: every dependency is awaited, as it was
        return cls(spec, states)

    @staticmethod
    def _cancels(node: StepSpec) -> bool:
        return node.quorum is not None and node.cancel_stragglers is not False

    def _counts(self, node: StepSpec) -> tuple[int, int]:
        states = [self._states[d].state for d in node.deps]
        return sum(s == "completed" for s in states), sum(s in _OPEN for s in states)

    def decided(self, node: StepSpec) -> bool:
        """Whether ``node``'s quorum is met, or can no longer be."""
        assert node.quorum is not None
        ok, still_open = self._counts(node)
        return ok >= node.quorum or ok + still_open < node.quorum

    def already_started(self, name: str) -> None:
        """Quorum step ``name`` ended in an earlier run (continue-as-new): it needs none of
        its stragglers any more."""
        self._started.add(name)

    def started(self, node: StepSpec, cancel: Callable[[str], Any]) -> list[str]:
        """``node`` is starting with its quorum met: cancel the stragglers nothing else
        needs (calling ``cancel(name)``). Returns their names."""
        if node.quorum is None:
            return []
        self._started.add(node.name)
        if not self._cancels(node):
            return []
        ok, _ = self._counts(node)
        why = (
            f"{QUORUM_MET} ({node.name!r} started with {ok} of {len(node.deps)}; "
            "this step was no longer needed)"
        )
        stopped = []
        for dep in node.deps:
            if self._states[dep].state not in _OPEN or dep in self._cancelled:
                continue
            if all(
                d in self._started and self._cancels(self._nodes[d]) for d in self._dependents[dep]
            ):
                self._cancelled[dep] = why
                cancel(dep)
                stopped.append(dep)
        return stopped

    def cancelled_as_straggler(self, name: str) -> str | None:
        """Why ``name`` was cancelled as a straggler, or None if it was not."""
        return self._cancelled.get(name)

    @property
    def stragglers(self) -> list[str]:
        """Every step cancelled as a straggler so far, in the order they were."""
        return list(self._cancelled)

    def options_for(self, node: StepSpec, options: StepOptions) -> StepOptions:
        """``options``, with a shorter heartbeat timeout when ``node`` may be cancelled as a
        straggler (and its own options do not set one), so it sees the cancel soon."""
        if options.heartbeat_timeout is not None or options.local:
            return options
        dependents = [self._nodes[d] for d in self._dependents[node.name]]
        if dependents and all(self._cancels(d) for d in dependents):
            return replace(options, heartbeat_timeout=STRAGGLER_HEARTBEAT_TIMEOUT)
        return options
