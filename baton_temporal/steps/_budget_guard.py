"""The worker side of budget caps: a call's worst case, and asking the flow to hold it.

``call_llm`` calls :func:`guard_call` before a request leaves and :func:`settle_call`
after it. The flow workflow keeps the book (workflow/_budget.py); this module prices the
call and talks to the workflow with its two Temporal updates. See docs/budgets.md.

The worst case of a call: its prompt, counted as one token per UTF-8 byte of its text
plus 8 per message (no text tokenizer makes more tokens than bytes), at the model's
input price, plus ``max_tokens`` at its output price. Under a cap:

* a model the pricer cannot price is refused (its worst case is unknown): give it a
  price in ``BATON_PRICES_FILE`` (or ``BatonPlugin(pricer=...)``) to use it;
* an OpenAI(-compatible) call without ``max_tokens`` is refused (OpenAI sets no bound on
  a reply); Anthropic calls default to ``max_tokens=1024`` and are priced at that;
* a step run as a local activity cannot call a model (the workflow cannot answer while
  its task runs the step): run it as a regular step.

Example (what call_llm does)::

    key = await guard_call(attempt_budget, job, model, messages, params, pricer)
    ...  # the request
    await settle_call(attempt_budget, key, cost)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from ..flow._budget import BudgetExceeded, usd
from ..flow._spec import FLOW_WORKFLOW_TYPE
from ..llm._complete import DEFAULT_ANTHROPIC_MAX_TOKENS
from ..llm._providers import resolve_provider
from ..pricing import Pricer
from ..usage import MAX_TOKENS, LLMUsage
from ..workflow._budget import RESERVE_UPDATE, SETTLE_UPDATE

__all__ = ["AttemptBudget", "call_cost", "guard_call", "settle_call", "worst_case"]

log = logging.getLogger("baton_temporal.budget")

BUDGET_UNAVAILABLE = "BudgetUnavailable"
BUDGET_UNSUPPORTED = "BudgetUnsupported"
_PER_MESSAGE_TOKENS = 8
_UPDATE_TIMEOUT_S = 30.0


@dataclass
class AttemptBudget:
    """What one step attempt knows of its budget: what the flow sent, the worker's
    default, and the attempt's identity (for the reservation keys)."""

    flow: Mapping[str, Any] | None
    worker_default: Decimal | None
    workflow_id: str
    run_id: str
    workflow_type: str
    activity_id: str
    attempt: int
    is_local: bool

    @property
    def applies(self) -> bool:
        return self.flow is not None or self.worker_default is not None

    def key(self, index: int) -> str:
        return f"{self.activity_id}/{self.attempt}/{index}"


def prompt_tokens_bound(messages: Sequence[Any], params: Mapping[str, Any]) -> int:
    """An upper bound on the prompt's tokens: UTF-8 bytes of its text (and of a system
    prompt or tools passed as parameters), plus a few per message."""
    total = 0
    for message in messages if isinstance(messages, Sequence) else ():
        total += _PER_MESSAGE_TOKENS
        content = message.get("content") if isinstance(message, Mapping) else message
        total += _text_bytes(content)
    for extra in ("system", "tools", "tool_choice", "response_format"):
        if extra in params:
            total += _text_bytes(params[extra])
    return min(total, MAX_TOKENS)


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    try:
        return len(json.dumps(value, default=str).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        return 0


def _max_output(model: str, params: Mapping[str, Any]) -> int:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = params.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ApplicationError(
                    f"{name}={value!r} is not a whole number of tokens >= 1; pass e.g. {name}=500",
                    type="InvalidLLMRequest",
                    non_retryable=True,
                )
            return min(value, MAX_TOKENS)
    provider, _ = resolve_provider(model)
    if provider == "anthropic":
        return DEFAULT_ANTHROPIC_MAX_TOKENS
    raise BudgetExceeded(
        f"call_llm to {model!r} under a budget needs max_tokens=...: {provider} sets no "
        "bound on a reply, so the call's worst case is unknown; pass max_tokens "
        "(e.g. max_tokens=500) or run the flow without budget_usd",
    )


def worst_case(
    pricer: Pricer, model: str, messages: Sequence[Any], params: Mapping[str, Any]
) -> Decimal:
    """The most the call can cost; :class:`BudgetExceeded` when that cannot be known."""
    _, name = resolve_provider(model)
    usage = LLMUsage(
        model=name[:256],
        input_tokens=prompt_tokens_bound(messages, params),
        output_tokens=_max_output(model, params),
        requested_at=datetime.now(UTC),
    )
    quote = pricer.cost(usage)
    if quote is None or quote.cost_usd is None:
        why = f" ({quote.note})" if quote is not None and quote.note else ""
        raise BudgetExceeded(
            f"model {model!r} has no price{why}, so under a budget its worst case is "
            "unknown and the call is refused: give it a price in BATON_PRICES_FILE "
            '(e.g. {"' + name[:60] + '": {"input": "0.50", "output": "1.50"}}, USD per '
            "million tokens) or a BatonPlugin(pricer=...), or run the flow without budget_usd"
        )
    return quote.cost_usd


def call_cost(pricer: Pricer, usage: LLMUsage) -> Decimal | None:
    """What a finished call cost, or None if it cannot be priced (kept at its worst)."""
    try:
        quote = pricer.cost(usage)
    except Exception:  # a broken pricer: the hold stays at the worst case
        log.exception("pricer failed for %r; its budget hold stays at the worst case", usage)
        return None
    return None if quote is None else quote.cost_usd


async def guard_call(
    budget: AttemptBudget,
    *,
    index: int,
    step: str,
    model: str,
    messages: Sequence[Any],
    params: Mapping[str, Any],
    pricer: Pricer,
) -> str | None:
    """Ask the flow to hold the call's worst case. Returns the hold's key (None: no cap
    applies); raises :class:`BudgetExceeded` if the call does not fit."""
    if not budget.applies:
        return None
    if budget.workflow_type != FLOW_WORKFLOW_TYPE:
        if budget.flow is not None:
            raise ApplicationError(
                "budget caps are kept by baton's flow workflow (baton.Flow); a hand-written "
                "workflow cannot hold them: run the steps in a flow (baton.new(...)) or "
                "drop the budget",
                type=BUDGET_UNSUPPORTED,
                non_retryable=True,
            )
        return None  # the worker's default applies to flows only
    if budget.is_local:
        raise ApplicationError(
            f"step {step!r} calls a model as a local activity in a flow with a budget; the "
            "flow cannot check the budget while its task runs the step: run the step as a "
            "regular activity (local=False)",
            type=BUDGET_UNSUPPORTED,
            non_retryable=True,
        )
    worst = worst_case(pricer, model, messages, params)
    key = budget.key(index)
    request: dict[str, Any] = {"key": key, "step": step, "worst_usd": str(worst)}
    if budget.worker_default is not None and (budget.flow or {}).get("cap_usd") is None:
        request["default_cap_usd"] = str(budget.worker_default)
    answer = await _update(budget, RESERVE_UPDATE, request, key + "/reserve")
    if not answer.get("ok"):
        spent = Decimal(answer.get("used_usd") or "0")
        cap = Decimal(answer["refused_cap_usd"]) if answer.get("refused_cap_usd") else None
        which = (
            "the step's StepOptions(budget_usd=...) / options.budget_usd"
            if answer.get("step_cap")
            else (
                "the worker's BATON_BUDGET_USD, or give the flow its own budget_usd"
                if answer.get("from_worker_default")
                else "the flow's budget_usd (baton.new(..., budget_usd=...) or the flow "
                'JSON\'s "budget_usd")'
            )
        )
        raise BudgetExceeded(
            f"call to {model!r} in step {step!r} refused: {answer.get('reason')}. "
            f"To allow it, raise {which}",
            spent_usd=spent,
            cap_usd=cap,
            worst_usd=worst,
        )
    log.debug("budget: held %s for %s (%s spent)", usd(worst), key, answer.get("spent_usd"))
    return key


async def settle_call(
    budget: AttemptBudget, key: str | None, step: str, cost: Decimal | None
) -> None:
    """Replace the call's hold by its cost; runs to its end even if the attempt is being
    cancelled. A settle that fails leaves the hold at the worst case (never less)."""
    if key is None:
        return
    request = {"key": key, "step": step, "cost_usd": None if cost is None else str(cost)}
    task = asyncio.ensure_future(_update(budget, SETTLE_UPDATE, request, key + "/settle"))
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    try:
        task.result()
    except Exception as err:
        log.warning("budget hold %s not settled (it stays at its worst case): %s", key, err)
    if cancelled:
        raise asyncio.CancelledError()


async def _update(
    budget: AttemptBudget, name: str, request: dict[str, Any], update_id: str
) -> dict[str, Any]:
    handle = activity.client().get_workflow_handle(budget.workflow_id, run_id=budget.run_id)
    try:
        answer = await asyncio.wait_for(
            handle.execute_update(name, request, id=update_id, result_type=dict),
            _UPDATE_TIMEOUT_S,
        )
    except WorkflowUpdateFailedError as err:
        raise ApplicationError(
            f"the flow refused the budget request {update_id!r}: {err.cause or err}",
            type=BUDGET_UNAVAILABLE,
            non_retryable=True,
        ) from None
    except Exception as err:  # the server is unreachable or slow: the step retries
        raise ApplicationError(
            f"could not reach the flow to check its budget ({type(err).__name__}: {err}); "
            "the call was not made and the step will retry",
            type=BUDGET_UNAVAILABLE,
        ) from None
    if not isinstance(answer, dict):
        raise ApplicationError(
            f"the flow answered the budget request with {answer!r}",
            type=BUDGET_UNAVAILABLE,
            non_retryable=True,
        )
    return answer
