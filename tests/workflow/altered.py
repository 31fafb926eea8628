"""Deliberately altered copies of the generic flow workflow, to show that the replay
corpus catches a change of commands and that ``workflow.patched`` makes it safe.

Each alteration comes twice: as a plain change (which must break replay of recorded
runs) and behind ``workflow.patched(ALTERED)`` with the old behaviour in the else branch
(which must replay every recorded run cleanly).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

from baton_temporal.workflow import FlowResult, FlowWorkflow

# The patch id of the alterations (a real one is declared in workflow/_versioning.py).
ALTERED = "test-altered-commands"


def _extra_activity() -> Any:
    return workflow.execute_activity(
        "echo", {"step": "audit"}, start_to_close_timeout=timedelta(seconds=10)
    )


def _with_steps(data: dict[str, Any], change: Any) -> dict[str, Any]:
    """``data`` (a flow, or a continued run's carry holding one) with its steps changed."""
    if "baton_continue" in data:
        return {**data, "flow": _with_steps(data["flow"], change)}
    return {**data, "steps": change(data["steps"])}


def _without_first_step(flow: dict[str, Any]) -> dict[str, Any]:
    # The first step, not the last: the first run of a flow that continued as new may
    # never have reached its last step, so leaving that out changes none of its commands.
    return _with_steps(flow, lambda steps: steps[1:])


def _reversed_steps(flow: dict[str, Any]) -> dict[str, Any]:
    return _with_steps(flow, lambda steps: list(reversed(steps)))


@workflow.defn(name="baton.Flow", sandboxed=False)
class ExtraActivity(FlowWorkflow):
    """Runs one more activity before the flow."""

    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        await _extra_activity()
        return await super().run(flow)


@workflow.defn(name="baton.Flow", sandboxed=False)
class ExtraActivityPatched(FlowWorkflow):
    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        if workflow.patched(ALTERED):
            await _extra_activity()
        return await super().run(flow)


@workflow.defn(name="baton.Flow", sandboxed=False)
class MissingActivity(FlowWorkflow):
    """Never runs the flow's first step."""

    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        return await super().run(_without_first_step(flow))


@workflow.defn(name="baton.Flow", sandboxed=False)
class MissingActivityPatched(FlowWorkflow):
    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        if workflow.patched(ALTERED):
            flow = _without_first_step(flow)
        return await super().run(flow)


@workflow.defn(name="baton.Flow", sandboxed=False)
class ReorderedActivities(FlowWorkflow):
    """Starts ready steps in the reverse order of the flow's list."""

    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        return await super().run(_reversed_steps(flow))


@workflow.defn(name="baton.Flow", sandboxed=False)
class ReorderedActivitiesPatched(FlowWorkflow):
    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        if workflow.patched(ALTERED):
            flow = _reversed_steps(flow)
        return await super().run(flow)
