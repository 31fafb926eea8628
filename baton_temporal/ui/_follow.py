"""Hear when a workflow may have changed: Temporal's history long-poll, not a timer.

A flow's step states change only inside workflow tasks, and every workflow task that
completes appends events to the run's history. ``GetWorkflowExecutionHistory`` with
``wait_new_event`` is a long poll that the server answers as soon as events are
appended; following it tells us of each change with no added history, no worker and no
extra service. Only one thing changes without a history event: an activity retry
(Temporal writes an activity's events once it ends), and the usage a running step
records in the ledger. While steps are in flight, :meth:`HistoryFollower.wait` therefore
also returns after ``refresh`` seconds, so attempt counts and tokens stay current.

Example::

    follower = HistoryFollower(client, "wf-1")
    async with follower:
        while not follower.closed:
            await follower.wait(refresh=2.0 if in_flight else None)
            ...  # read the new state (query, describe, ledger)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["HistoryFollower"]


class HistoryFollower:
    """Follows the history of a workflow's runs (continue-as-new included)."""

    def __init__(self, client: Any, workflow_id: str) -> None:
        self._client = client
        self.workflow_id = workflow_id
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        """True once the last run of the workflow has closed (nothing more will change)."""
        self.events = 0
        """History events seen so far (over all runs)."""
        self.first_event: Any = None
        """The first run's WorkflowExecutionStarted event (its input is the flow)."""
        self.error: BaseException | None = None
        self.summaries: dict[str, Any] = {}
        """Activity id -> its summary payload (the flow labels a step's activity with its
        name), for telling which step a pending activity's attempt belongs to."""

    async def __aenter__(self) -> HistoryFollower:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def wait(self, *, refresh: float | None = None) -> bool:
        """Wait for new history events (True), or ``refresh`` seconds (False)."""
        try:
            if refresh is None:
                await self._changed.wait()
            else:
                await asyncio.wait_for(self._changed.wait(), timeout=refresh)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def _follow(self) -> None:
        from temporalio.api.enums.v1 import EventType

        try:
            run_id: str | None = None
            while True:
                handle = self._client.get_workflow_handle(self.workflow_id, run_id=run_id)
                pages = handle.fetch_history_events(wait_new_event=True, skip_archival=True)
                next_run: str | None = None
                while True:
                    await pages.fetch_next_page()
                    page = pages.current_page or []
                    for event in page:
                        if self.first_event is None:
                            self.first_event = event
                        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                            attrs = event.activity_task_scheduled_event_attributes
                            if event.user_metadata.HasField("summary"):
                                self.summaries[attrs.activity_id] = event.user_metadata.summary
                        if event.event_type == (
                            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
                        ):
                            attrs = event.workflow_execution_continued_as_new_event_attributes
                            next_run = attrs.new_execution_run_id or None
                    if page:
                        self.events += len(page)
                        self._changed.set()
                    if pages.next_page_token is None:
                        break  # the run has closed: its history is complete
                if next_run is None:
                    break
                run_id = next_run
                self.summaries.clear()  # activity ids start again in the new run
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the workflow vanished, the server went away...
            self.error = err
        self.closed = True
        self._changed.set()
