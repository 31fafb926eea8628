"""The generic flow workflow registered to run IN Temporal's sandbox, for
``benchmarks/sandbox.py`` only: the same code as ``baton.Flow``, ``sandboxed=True``."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from baton_temporal.workflow import FlowResult, FlowWorkflow


@workflow.defn(name="baton.Flow", sandboxed=True)
class SandboxedFlow(FlowWorkflow):
    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        return await super().run(flow)


@workflow.defn(name="bench.SandboxedFlow", sandboxed=True)
class LiveSandboxedFlow(FlowWorkflow):
    """The same, under a name of its own, to run beside ``baton.Flow`` on one worker."""

    @workflow.run
    async def run(self, flow: Any) -> FlowResult:
        return await super().run(flow)
