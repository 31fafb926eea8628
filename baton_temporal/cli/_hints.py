"""What ``baton status`` suggests when no worker answers for a workflow.

``baton worker`` registers the generic flow workflow (``baton.Flow``) and the step
modules it is given, and nothing else: it can serve a declared flow, never a
hand-written ``@workflow.defn`` class. So the hint depends on the workflow's type.
"""

from __future__ import annotations

from typing import Any

from ._invocation import baton_command

__all__ = ["ledger_hint", "reused_id_note", "worker_hint"]


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


async def reused_id_note(client: Any, workflow_id: str) -> str | None:
    """A note when a chosen workflow id already ran and closed: Temporal starts a new run
    under the same id, and the ledger, which keys calls by workflow id, adds both runs up
    in ``baton stats`` (four starts of one file once showed 12 attempts for 3 steps).
    None when the id is new, or still running (the start then fails and says so).

    Example::

        note = await reused_id_note(client, "brief-42")
    """
    from temporalio.service import RPCError

    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return None
    if description.close_time is None:
        return None
    status = description.status.name.lower() if description.status else "closed"
    return (
        f"note: workflow id {workflow_id!r} ran before ({status} at "
        f"{description.close_time:%Y-%m-%d %H:%M:%S} UTC); `{baton_command()} stats` adds this "
        "run's ledger rows to that run's. For a run of its own pass --id NEW_ID, or drop "
        "workflow_id from the file (a fresh id on every start)"
    )
