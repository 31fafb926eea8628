"""What ``baton status`` suggests when no worker answers for a workflow.

``baton worker`` registers the generic flow workflow (``baton.Flow``) and the step
modules it is given, and nothing else: it can serve a declared flow, never a
hand-written ``@workflow.defn`` class. So the hint depends on the workflow's type.
"""

from __future__ import annotations

from ._invocation import baton_command

__all__ = ["ledger_hint", "worker_hint"]


def ledger_hint(workflow_id: str) -> str:
    """Where a workflow's LLM calls can be read without any worker: the ledger."""
    return f"its LLM calls so far: `{baton_command()} stats steps {workflow_id}`"


def worker_hint(workflow_type: str | None, task_queue: str, workflow_id: str) -> str:
    """The fix to suggest when the steps of ``workflow_id`` cannot be read.

    Example::

        worker_hint("baton.Flow", "baton", "wf-1")
        # "start a worker for that queue (`baton worker --task-queue baton --steps MODULE`)"
    """
    from ..flow import FLOW_WORKFLOW_TYPE

    baton = baton_command()
    if workflow_type == FLOW_WORKFLOW_TYPE:
        return (
            f"start a worker for that queue (`{baton} worker --task-queue {task_queue} "
            "--steps MODULE`)"
        )
    return (
        f"{workflow_type} is a hand-written workflow, which `{baton} worker` cannot run: start "
        f"your own worker program that registers it on task queue {task_queue!r} "
        f"(Worker(client, task_queue={task_queue!r}, workflows=[{workflow_type}], "
        "plugins=[baton.BatonPlugin(steps=[...])])); " + ledger_hint(workflow_id)
    )
