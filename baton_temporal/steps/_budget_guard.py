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

Non-text content (an image's base64 data) counts byte for byte: such calls are
over-estimated, never under.

Example (what call_llm does)::

    key = await guard_call(budget, index=0, step=..., model=..., messages=...,
                           params=..., pricer=...)
    ...  # the request
    settle_call(budget, key, step, cost)   # sent with the next request, or at the end
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from ..flow._budget import BudgetExceeded, usd
from ..flow._spec import FLOW_WORKFLOW_TYPE
from ..llm._complete import DEFAULT_ANTHROPIC_MAX_TOKENS
from ..llm._providers import resolve_provider
from ..pricing import MAX_CALL_COST_USD, Pricer
from ..usage import MAX_TOKENS, LLMUsage
from ..workflow._budget import BUDGET_UPDATE

__all__ = [
    "AttemptBudget",
    "BudgetChannel",
    "call_cost",
    "guard_call",
    "settle_call",
    "worst_case",
]

log = logging.getLogger("baton_temporal.budget")

BUDGET_UNAVAILABLE = "BudgetUnavailable"
BUDGET_UNSUPPORTED = "BudgetUnsupported"
PRICING_FAILED = "PricingFailed"
_PER_MESSAGE_TOKENS = 8
# call_llm's own switches: they choose how the call is sent, and reach no model as text.
_NOT_PROMPT = frozenset({"api", "stream"})
_UPDATE_TIMEOUT_S = 30.0
_MAX_OPS = 200  # requests per update (the workflow's validator takes up to MAX_OPS)


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
    client: Any = None
    channel: BudgetChannel = field(default_factory=lambda: BudgetChannel())

    @property
    def applies(self) -> bool:
        return self.flow is not None or self.worker_default is not None

    def key(self, index: int) -> str:
        return f"{self.activity_id}/{self.attempt}/{index}"


def prompt_tokens_bound(messages: Sequence[Any], params: Mapping[str, Any]) -> int:
    """An upper bound on the prompt's tokens: UTF-8 bytes of its text, plus a few per
    message, plus the bytes of every parameter that carries text or structure.

    Every such parameter counts, not a list of known ones: a provider bills as prompt
    what arrives as ``system``, ``tools``, ``response_format``, and also the Responses
    API's ``instructions`` / ``text`` and Anthropic's ``output_config`` schema. A knob
    that is not prompt (``metadata``, ``stop``) counts too, which only makes the bound
    stricter; numbers and switches (``max_tokens``, ``temperature``) do not."""
    total = 0
    for message in messages if isinstance(messages, Sequence) else ():
        total += _PER_MESSAGE_TOKENS
        content = message.get("content") if isinstance(message, Mapping) else message
        total += _text_bytes(content)
    for name, value in params.items():
        if name not in _NOT_PROMPT and not (value is None or isinstance(value, int | float)):
            total += _text_bytes(value)
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
    try:
        quote = pricer.cost(usage)
    except Exception as err:  # a broken custom pricer stays broken: no retry helps
        raise ApplicationError(
            f"the pricer {pricer!r} failed to price {model!r} ({type(err).__name__}: {err}); "
            "under a budget each call needs its worst case priced: fix the pricer "
            "(BATON_PRICER, BATON_PRICES_FILE or BatonPlugin(pricer=...))",
            type=PRICING_FAILED,
            non_retryable=True,
        ) from None
    if quote is not None and quote.cost_usd is not None and not _sane(quote.cost_usd):
        raise ApplicationError(
            f"the pricer {pricer!r} quoted {quote.cost_usd} USD for the worst case of a call "
            f"to {model!r}, outside 0..{MAX_CALL_COST_USD}; fix its prices (USD per million "
            "tokens)",
            type=PRICING_FAILED,
            non_retryable=True,
        )
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
    if usage.usage_unknown:  # billed, counts not known: not priced at 0
        return None
    try:
        quote = pricer.cost(usage)
    except Exception:  # a broken pricer: the hold stays at the worst case
        log.exception("pricer failed for %r; its budget hold stays at the worst case", usage)
        return None
    cost = None if quote is None else quote.cost_usd
    # A cost the book would refuse (NaN, negative, absurd) keeps the worst case instead:
    # sent, it would make the flow refuse the whole batch it travels in.
    return cost if cost is not None and _sane(cost) else None


def _sane(amount: Decimal) -> bool:
    return isinstance(amount, Decimal) and amount.is_finite() and 0 <= amount <= MAX_CALL_COST_USD


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
    stopped = budget.channel.stopped.get((budget.workflow_id, budget.run_id))
    if stopped is not None:
        # The flow's cap already refused a call: it refuses every later one (the book
        # never un-stops), so this one is refused here, without asking again.
        raise BudgetExceeded(
            f"call to {model!r} in step {step!r} refused: {stopped}",
            worst_usd=worst,
        )
    key = budget.key(index)
    request: dict[str, Any] = {"op": "reserve", "key": key, "step": step, "worst_usd": str(worst)}
    if budget.worker_default is not None and (budget.flow or {}).get("cap_usd") is None:
        request["default_cap_usd"] = str(budget.worker_default)
    answer = await budget.channel.reserve(budget, request)
    if not answer.get("ok"):
        spent = Decimal(answer.get("used_usd") or "0")
        if not answer.get("step_cap") and answer.get("stopped"):
            budget.channel.stopped[(budget.workflow_id, budget.run_id)] = str(answer["stopped"])
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


def settle_call(budget: AttemptBudget, key: str | None, step: str, cost: Decimal | None) -> None:
    """Replace the call's hold by its cost (None: unknown, it stays at its worst case).

    Sent with this worker's next request to the flow, or when the attempt ends
    (:meth:`BudgetChannel.flush`): one update per call instead of two. Until then the
    hold stands at the worst case, which only makes other calls' checks stricter."""
    if key is not None:
        op: dict[str, Any] = {"op": "settle", "key": key, "step": step}
        op["cost_usd"] = None if cost is None else str(cost)
        budget.channel.later(budget, op)


class BudgetChannel:
    """One worker's line to its flows' budget books: requests for one run that queue up
    while an update is in flight go together in the next one.

    Temporal takes at most 10 updates in flight per run and 2,000 per run in all; a
    fan-out of 100 models on one worker makes about one update per round trip, not 200.
    """

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], list[tuple[dict[str, Any], Any]]] = {}
        self._senders: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Runs whose flow cap refused a call (bounded: the oldest are forgotten).
        self.stopped: dict[tuple[str, str], str] = _Bounded()

    async def reserve(self, budget: AttemptBudget, op: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue(budget).append((op, future))
        self._kick(budget)
        return await future

    def later(self, budget: AttemptBudget, op: dict[str, Any]) -> None:
        self._queue(budget).append((op, None))

    async def flush(self, budget: AttemptBudget) -> None:
        """Send what is queued for the attempt's run and wait for it; never raises, and
        runs to its end even if the attempt is being cancelled."""
        key = (budget.workflow_id, budget.run_id)
        cancelled = False
        while self._queues.get(key) or (key in self._senders and not self._senders[key].done()):
            self._kick(budget)
            sender = self._senders[key]
            try:
                await asyncio.wait({sender}, timeout=_UPDATE_TIMEOUT_S * 2)
            except asyncio.CancelledError:
                cancelled = True
            if not sender.done():
                log.warning("budget settlements for %s not sent in time; holds stay", key)
                break
        if cancelled:
            raise asyncio.CancelledError()

    def _queue(self, budget: AttemptBudget) -> list[tuple[dict[str, Any], Any]]:
        return self._queues.setdefault((budget.workflow_id, budget.run_id), [])

    def _kick(self, budget: AttemptBudget) -> None:
        key = (budget.workflow_id, budget.run_id)
        sender = self._senders.get(key)
        if sender is None or sender.done():
            self._senders[key] = asyncio.ensure_future(self._send(budget, key))

    async def _send(self, budget: AttemptBudget, key: tuple[str, str]) -> None:
        try:
            while self._queues.get(key):
                queue = self._queues[key]
                batch, queue[:] = queue[:_MAX_OPS], queue[_MAX_OPS:]
                try:
                    answer = await _update(budget, [op for op, _ in batch])
                    results = answer.get("results")
                    if not isinstance(results, list) or len(results) != len(batch):
                        raise ApplicationError(
                            f"the flow answered the budget requests with {answer!r}",
                            type=BUDGET_UNAVAILABLE,
                            non_retryable=True,
                        )
                except Exception as err:
                    for op, future in batch:
                        if future is None:
                            log.warning(
                                "budget hold %s not settled (stays at its worst case): %s",
                                op["key"],
                                err,
                            )
                        elif not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future is not None and not future.done():
                        future.set_result(result)
        finally:
            if not self._queues.get(key):
                self._queues.pop(key, None)
                if self._senders.get(key) is asyncio.current_task():
                    del self._senders[key]


class _Bounded(dict[tuple[str, str], str]):
    """A dict that keeps its newest 1,000 entries."""

    def __setitem__(self, key: tuple[str, str], value: str) -> None:
        super().__setitem__(key, value)
        while len(self) > 1000:
            del self[next(iter(self))]


async def _update(budget: AttemptBudget, ops: list[dict[str, Any]]) -> dict[str, Any]:
    handle = budget.client.get_workflow_handle(budget.workflow_id, run_id=budget.run_id)
    try:
        answer = await asyncio.wait_for(
            handle.execute_update(
                BUDGET_UPDATE, {"ops": ops}, id=f"baton-budget-{uuid.uuid4()}", result_type=dict
            ),
            _UPDATE_TIMEOUT_S,
        )
    except WorkflowUpdateFailedError as err:
        raise ApplicationError(
            f"the flow refused the budget requests: {err.cause or err}",
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
            f"the flow answered the budget requests with {answer!r}",
            type=BUDGET_UNAVAILABLE,
            non_retryable=True,
        )
    return answer
