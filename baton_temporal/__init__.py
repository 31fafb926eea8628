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

The package is laid out by where code runs: ``flow`` builds flows, ``workflow`` is what
runs in workflow code (it imports only ``flow`` and temporalio), ``steps`` wraps step
functions, and the worker side is ``llm``, ``ledger``, ``pricing``, ``worker`` and ``cli``.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from ._plugin import BatonPlugin
    from .flow import (
        BUDGET_EXCEEDED,
        FLOW_WORKFLOW_TYPE,
        SCHEMA_VERSION,
        BudgetExceeded,
        Flow,
        FlowError,
        FlowSpec,
        NotADependencyError,
        StepDefinitionError,
        StepOptions,
        StepSpec,
        new,
    )
    from .llm import LLMResponse
    from .steps import Job, Step, get_all_results, get_result, step
    from .steps._accounting import call_llm
    from .usage import LLMUsage
    from .workflow import FlowResult, FlowWorkflow, StepState, run_step

# Every name loads on first use: `import baton_temporal` (and so `baton --help`, which
# lives in this package) costs nothing, workflow code loads only flow/ and workflow/, and
# the worker side (LLM SDKs, SQLAlchemy, price data: about a second) only when asked for.
_LAZY = {
    **dict.fromkeys(
        (
            "BUDGET_EXCEEDED",
            "BudgetExceeded",
            "FLOW_WORKFLOW_TYPE",
            "SCHEMA_VERSION",
            "Flow",
            "FlowError",
            "FlowSpec",
            "NotADependencyError",
            "StepDefinitionError",
            "StepOptions",
            "StepSpec",
            "new",
        ),
        ".flow",
    ),
    **dict.fromkeys(("Job", "Step", "get_all_results", "get_result", "step"), ".steps"),
    **dict.fromkeys(("FlowResult", "FlowWorkflow", "StepState", "run_step"), ".workflow"),
    "LLMUsage": ".usage",
    "BatonPlugin": "._plugin",
    "LLMResponse": ".llm",
    "call_llm": ".steps._accounting",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "BUDGET_EXCEEDED",
    "FLOW_WORKFLOW_TYPE",
    "SCHEMA_VERSION",
    "BatonPlugin",
    "BudgetExceeded",
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
