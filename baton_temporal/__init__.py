"""baton-temporal: DAG workflows of LLM steps on Temporal.

Declare steps, chain them into a flow, start it; Temporal makes it durable::

    import baton_temporal as baton

    @baton.step
    async def parse_doc(job: baton.Job) -> dict:
        return {"sections": job.args["text"].split("\\n\\n")}

    flow = baton.new(workflow_name="analysis").add("parse", parse_doc, {"text": text})
    result = await flow.run(client, task_queue="baton")

A worker runs the steps::

    Worker(client, task_queue="baton", plugins=[baton.BatonPlugin(steps=[parse_doc])])
"""

from ._accounting import call_llm
from ._dag import FlowResult, FlowWorkflow, StepState
from ._errors import FlowError, NotADependencyError, StepDefinitionError
from ._flow import Flow, new
from ._job import Job, get_all_results, get_result
from ._options import StepOptions
from ._plugin import BatonPlugin
from ._runtime import run_step
from ._spec import SCHEMA_VERSION, FlowSpec, StepSpec
from ._step import Step, step
from ._wire import FLOW_WORKFLOW_TYPE
from .llm import LLMResponse
from .usage import LLMUsage

__all__ = [
    "FLOW_WORKFLOW_TYPE",
    "SCHEMA_VERSION",
    "BatonPlugin",
    "Flow",
    "FlowError",
    "FlowResult",
    "FlowSpec",
    "FlowWorkflow",
    "Job",
    "LLMResponse",
    "LLMUsage",
    "NotADependencyError",
    "Step",
    "StepDefinitionError",
    "StepOptions",
    "StepSpec",
    "StepState",
    "call_llm",
    "get_all_results",
    "get_result",
    "new",
    "run_step",
    "step",
]
