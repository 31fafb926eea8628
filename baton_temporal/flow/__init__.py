"""Building flows: the builder, the flow schema and its checks, step options.

Nothing here runs a step or talks to Temporal at import; the generic flow workflow
(``baton_temporal.workflow``) reads what this package builds.

Example::

    from baton_temporal.flow import new

    flow = new(workflow_name="brief").add("fetch", fetch_sources, {"url": url})
    flow.to_json()
"""

from ._budget import BUDGET_EXCEEDED, BudgetExceeded
from ._builder import Flow, new
from ._errors import FanInError, FlowError, NotADependencyError, StepDefinitionError
from ._json import find_non_json
from ._options import DEFAULT_RETRY, StepOptions, StepRef
from ._spec import FLOW_WORKFLOW_TYPE, SCHEMA_VERSION, FlowSpec, StepSpec, check_flow, parse_flow

__all__ = [
    "BUDGET_EXCEEDED",
    "DEFAULT_RETRY",
    "FLOW_WORKFLOW_TYPE",
    "SCHEMA_VERSION",
    "BudgetExceeded",
    "FanInError",
    "Flow",
    "FlowError",
    "FlowSpec",
    "NotADependencyError",
    "StepDefinitionError",
    "StepOptions",
    "StepRef",
    "StepSpec",
    "check_flow",
    "find_non_json",
    "new",
    "parse_flow",
]
