"""What runs inside workflow code: the generic flow workflow, the helpers that run steps
from any ``@workflow.defn`` class, and the data that crosses Temporal's wire.

This package imports only ``baton_temporal.flow``, ``temporalio`` and the standard
library (a test checks it): nothing from the ledger, the LLM providers or SQLAlchemy, so
workflow code stays deterministic and cheap to load in Temporal's sandbox.

Example::

    from baton_temporal.workflow import run_step

    @workflow.defn
    class Brief:
        @workflow.run
        async def run(self, url: str) -> dict:
            return await run_step(fetch_sources, {"url": url}, name="fetch")
"""

from ._fan_out import FanOutResults, run_fan_out, run_synthesis
from ._flow_workflow import FlowResult, FlowWorkflow, StepState
from ._runtime import execute_step, run_step
from ._wire import StepInput, StepOutput

__all__ = [
    "FanOutResults",
    "FlowResult",
    "FlowWorkflow",
    "StepInput",
    "StepOutput",
    "StepState",
    "execute_step",
    "run_fan_out",
    "run_step",
    "run_synthesis",
]
