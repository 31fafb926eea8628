"""Data that crosses Temporal's wire between the flow workflow and step activities.

Kept as plain frozen dataclasses of JSON types so that Temporal's default JSON converter
handles them with no custom code, and so that a flow started from the `temporal` CLI
(JSON in) or read back from history (JSON out) is readable as it is.
"""

# No `from __future__ import annotations` here: the payload converter resolves these
# classes' type hints on every decode, and real annotations make that twice as cheap.
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio.exceptions import ApplicationError

# The activity that writes usage to the ledger when the step activity could not.
RECORD_USAGE_ACTIVITY = "baton.record_usage"
# Error types raised by the library itself that no retry can fix.
UNKNOWN_STEP_ERROR = "UnknownStep"
STEP_RESULT_ERROR = "StepResultError"
FLOW_FAILED_ERROR = "FlowFailed"
INVALID_FLOW_ERROR = "InvalidFlow"
FLOW_INTERNAL_ERROR = "FlowInternalError"
FAN_IN_ERROR = "FanInError"
UNPRINTABLE_ERROR = "UnprintableError"
# Where the catch-all activity's UnknownStep error says which step, queue and wait.
UNREGISTERED_STEP_KEY = "baton_unregistered_step"
# Where a failed attempt carries usage records it could not write (error or heartbeat details).
PENDING_USAGE_KEY = "baton_pending_usage"


@dataclass(frozen=True)
class StepInput:
    """What a step activity receives: everything a :class:`~baton_temporal.Job` holds
    that Temporal's activity info does not already carry."""

    step: str
    args: dict[str, Any] = field(default_factory=dict)
    workflow_name: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    debug: bool = False
    budget: dict[str, Any] | None = None
    """The caps that apply and the spend so far (workflow/_budget.py); None: no cap
    (sent only when set, so steps without one keep the same input)."""


@dataclass(frozen=True)
class StepOutput:
    """What a step activity returns to the workflow.

    ``result`` is the step's own result with ``llm_usage`` already removed.
    ``pending_usage`` holds usage records the activity could not write to the ledger
    (the ledger was down); the workflow hands them to the record-usage activity, so the
    usage is kept in Temporal history until it lands, and the LLM call is never re-run.
    ``cost_usd`` is what the attempt's LLM calls cost (a decimal string), None when it made
    none or one of them could not be priced; the Temporal UI's step table shows it.
    ``model`` names the model(s) the attempt's calls used (``"a, b"`` for several), None
    when it made none; the step table shows it for a step whose args name no model.
    """

    result: dict[str, Any]
    attempt: int = 1
    pending_usage: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: str | None = None
    model: str | None = None


def pending_from(details: Sequence[Any]) -> list[dict]:
    for item in details or ():
        if isinstance(item, dict) and isinstance(item.get(PENDING_USAGE_KEY), list):
            return list(item[PENDING_USAGE_KEY])
    return []


def pending_from_error(err: BaseException | None) -> list[dict]:
    """Usage records carried by a failed step's error (the worker side puts them there)."""
    if isinstance(err, ApplicationError):
        return pending_from(err.details)
    return []


def invalid(message: str, *, type: str = INVALID_FLOW_ERROR) -> ApplicationError:
    """The error that fails a flow's run at once: its input (or the library) is at fault,
    and no retry of the run or its workflow task could change that."""
    return ApplicationError(message, type=type, non_retryable=True)
