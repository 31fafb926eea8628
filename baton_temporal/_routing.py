"""Which task queues a flow may send its steps to: an allow-list for the worker and CLI.

A flow file's ``options.task_queue`` routes a step to any task queue of the namespace,
and so to whatever workers poll it (with their keys, their network, their steps). Where
flow files come from other people, list the queues they may use::

    BATON_ALLOWED_TASK_QUEUES=baton,baton-gpu baton worker ...
    BATON_ALLOWED_TASK_QUEUES=baton,baton-gpu baton start their-flow.yaml

The worker then fails a run that schedules a step on another queue at once
(``TaskQueueNotAllowed``, not retried), before the step is scheduled; ``baton start``
refuses the file before it reaches Temporal. A step without ``task_queue`` runs on the
flow's own queue and is always allowed. Unset (the default): any queue.

Example::

    plugin = baton.BatonPlugin(steps=STEPS, allowed_task_queues=["baton", "baton-gpu"])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

__all__ = [
    "ALLOWED_TASK_QUEUES_ENV",
    "TASK_QUEUE_NOT_ALLOWED",
    "TaskQueueAllowList",
    "allowed_task_queues_from",
    "disallowed_task_queues",
]

ALLOWED_TASK_QUEUES_ENV = "BATON_ALLOWED_TASK_QUEUES"
TASK_QUEUE_NOT_ALLOWED = "TaskQueueNotAllowed"


def allowed_task_queues_from(
    explicit: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> frozenset[str] | None:
    """The allow-list: ``explicit``, else ``$BATON_ALLOWED_TASK_QUEUES`` (comma-separated);
    ``None`` means any queue."""
    if explicit is None:
        env = os.environ if environ is None else environ
        raw = env.get(ALLOWED_TASK_QUEUES_ENV, "")
        if not raw.strip():
            return None
        explicit = raw.split(",")
    if isinstance(explicit, str):
        raise TypeError("allowed_task_queues must be a list of queue names, not one string")
    names = frozenset(q.strip() for q in explicit if q.strip())
    if not names:
        raise ValueError(
            f"the task-queue allow-list ({ALLOWED_TASK_QUEUES_ENV}) is set but names no "
            "queue; list queues, e.g. baton,baton-gpu, or unset it to allow any"
        )
    return names


def not_allowed_message(queue: str, step: str, allowed: Iterable[str]) -> str:
    return (
        f"step {step!r} asks for task queue {queue!r}, which this deployment does not allow "
        f"(allowed: {', '.join(sorted(allowed))}); remove options.task_queue from the step "
        f"or use an allowed queue, or add the queue to {ALLOWED_TASK_QUEUES_ENV} on the "
        "workers and the CLI"
    )


def disallowed_task_queues(flow: Any, allowed: frozenset[str] | None) -> list[str]:
    """One message per step of ``flow`` (a ``baton.Flow``) routed outside ``allowed``."""
    if allowed is None:
        return []
    problems = []
    for spec in flow.spec.steps:
        queue = (spec.options or {}).get("task_queue")
        if queue and queue not in allowed:
            problems.append(not_allowed_message(queue, spec.name, allowed))
    return problems


class TaskQueueAllowList(Interceptor):
    """Worker interceptor: a workflow may schedule activities (and child workflows) only
    on allowed task queues or its own. Installed by ``BatonPlugin``; a no-op when
    ``allowed`` is ``None``."""

    def __init__(self, allowed: frozenset[str] | None) -> None:
        self.allowed = allowed

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        if self.allowed is None:
            return None
        allowed: frozenset[str] = self.allowed

        class _Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(_Outbound(outbound, allowed))

        return _Inbound


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, allowed: frozenset[str]) -> None:
        super().__init__(next)
        self._allowed = allowed

    def _check(self, queue: str | None, what: str) -> None:
        # Raised before the command exists: the run fails at once, nothing is scheduled.
        if queue and queue != workflow.info().task_queue and queue not in self._allowed:
            raise ApplicationError(
                not_allowed_message(queue, what, self._allowed),
                type=TASK_QUEUE_NOT_ALLOWED,
                non_retryable=True,
            )

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        self._check(input.task_queue, _step_name(input))
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        return super().start_local_activity(input)  # runs on this worker: nothing to route

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        self._check(input.task_queue, f"child workflow {input.workflow}")
        return await super().start_child_workflow(input)


def _step_name(input: StartActivityInput) -> str:
    # A baton step's StepInput carries the node's name; plain activities have only a type.
    # (run_step sends it as a plain dict: the StepInput's fields)
    first = input.args[0] if input.args else None
    name = first.get("step") if isinstance(first, dict) else getattr(first, "step", None)
    return str(name or input.activity)
