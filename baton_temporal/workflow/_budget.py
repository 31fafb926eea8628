"""The flow's budget book: spend so far, kept by the workflow, deterministically.

The rule (docs/budgets.md):

* Before each model call, the step activity asks the flow workflow, with the Temporal
  update ``baton.budget.requests``, to hold the call's worst case (its prompt estimate
  at the input price plus ``max_tokens`` at the output price). The workflow grants it
  only if ``spent + held + worst <= cap`` (for the flow's cap, and for the step's own cap
  if it has one), and then holds it. After the call a settle request (sent with the
  worker's next request, or when the attempt ends) replaces the hold by what the call
  cost. A call whose reply never came back (a worker killed mid-call) keeps its hold: it
  counts at its worst case. A worker sends its queued requests for a run together.
* Updates are handled one at a time in workflow code and recorded in history, so steps
  racing for the last dollars cannot both take them: whatever the concurrency, the holds
  and settled costs never pass the cap. Only a call that costs more than its worst case
  (a prompt longer in tokens than in UTF-8 bytes, which no text tokenizer produces, or a
  pricer that prices the reply above the same tokens' quote) could take the spend past
  it, and by at most that call's excess.
* The first call refused for the flow's cap stops the flow: no new step starts, and the
  flow fails with type ``BudgetExceeded`` once the steps in flight end. A call refused for
  a step's own cap fails that step only (its dependents are cancelled as usual).
* A flow without a cap adopts the worker's default (``BATON_BUDGET_USD``) with the first
  reservation that carries one; that too is recorded in history.

Example (what the workflow holds)::

    book = BudgetBook()
    book.start(Decimal("1.00"), {"summarize": Decimal("0.25")})
    book.reserve({"key": "a/1/0", "step": "summarize", "worst_usd": "0.02"})
    # {"ok": True, ...}; then book.settle({"key": "a/1/0", "cost_usd": "0.013"})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..flow._budget import BUDGET_EXCEEDED, MAX_BUDGET_USD, budget_problem, usd

__all__ = [
    "BUDGET_QUERY",
    "BUDGET_UPDATE",
    "MAX_OPS",
    "BudgetBook",
    "carry_problem",
    "check_request",
    "check_requests",
]

# One update carries a worker's queued requests for the run: {"ops": [...]}, each op a
# reserve or a settle; the answer is {"results": [...]}, one per op, in order.
BUDGET_UPDATE = "baton.budget.requests"
BUDGET_QUERY = "baton.budget"
MAX_OPS = 500
# Bounds on what an update may carry: anyone who may send updates can send one.
_MAX_KEY = 512
_MAX_AMOUNT = Decimal(100_000)  # pricing.MAX_CALL_COST_USD: no call costs more
_ZERO = Decimal(0)
# What a run may carry over as spent: a cap's worth, plus the one call that may pass it.
_MAX_CARRIED = MAX_BUDGET_USD + _MAX_AMOUNT


def _amount(
    value: Any, where: str, *, zero_ok: bool = True, limit: Decimal = _MAX_AMOUNT
) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{where} must be an amount as a string, got {value!r}")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{where} is {value!r}, not an amount") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not zero_ok):
        raise ValueError(f"{where} is {value!r}; it must be a finite amount >= 0")
    if amount > limit:
        raise ValueError(f"{where} is {value!r}, more than it can be")
    return amount


def check_requests(batch: Any) -> None:
    """Refuse a malformed batch (the update's validator): a rejected update leaves no
    trace in history and never fails the workflow task."""
    ops = batch.get("ops") if isinstance(batch, dict) else None
    if not isinstance(ops, list) or not 0 < len(ops) <= MAX_OPS:
        raise ValueError(f'budget requests come as {{"ops": [...]}}, 1 to {MAX_OPS} of them')
    for op in ops:
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in ("reserve", "settle"):
            raise ValueError("each budget request is a reserve or a settle")
        check_request(op, settle=kind == "settle")


def check_request(request: Any, *, settle: bool = False) -> None:
    """Refuse a malformed reserve/settle request."""
    if not isinstance(request, dict):
        raise ValueError("a budget request is a JSON object")
    key, step = request.get("key"), request.get("step")
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY:
        raise ValueError("a budget request needs its call's key")
    if not isinstance(step, str) or len(step) > _MAX_KEY:
        raise ValueError("a budget request needs its step's name")
    if settle:
        cost = request.get("cost_usd")
        if cost is not None:
            _amount(cost, "cost_usd")
        return
    _amount(request.get("worst_usd"), "worst_usd")
    default = request.get("default_cap_usd")
    if default is not None:
        bad = budget_problem(default, "default_cap_usd")
        if bad:
            raise ValueError(bad)


@dataclass
class BudgetBook:
    """What the flow may spend and has spent; every change comes from workflow code."""

    cap: Decimal | None = None
    step_caps: dict[str, Decimal] = field(default_factory=dict)
    spent: Decimal = _ZERO
    step_spent: dict[str, Decimal] = field(default_factory=dict)
    # key -> (step, worst case): calls granted and not settled yet.
    held: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    refused: str | None = None
    """Why the flow stopped: the first call refused for the flow's cap."""
    calls: int = 0
    from_worker_default: bool = False

    def start(
        self,
        cap: Decimal | None,
        options: Mapping[str, Any],
        carried: dict[str, Any] | None = None,
    ) -> None:
        """Set the caps at the start of a run (the flow's, and each step's from its
        options), and what an earlier run (continue-as-new) had spent and held (its holds
        count as spent: they are that run's calls)."""
        self.cap = cap
        self.step_caps = {
            name: Decimal(str(o.budget_usd))
            for name, o in options.items()
            if getattr(o, "budget_usd", None) is not None
        }
        if carried:
            self.spent = Decimal(carried["spent_usd"])
            self.step_spent = {k: Decimal(v) for k, v in carried.get("steps", {}).items()}
            self.refused = carried.get("refused")
            self.calls = carried.get("calls", 0)
            if self.cap is None and carried.get("cap_usd") is not None:
                self.cap = Decimal(carried["cap_usd"])
                self.from_worker_default = True

    @property
    def active(self) -> bool:
        return self.cap is not None or bool(self.step_caps)

    @property
    def held_total(self) -> Decimal:
        return sum((w for _, w in self.held.values()), _ZERO)

    def for_step(self, step: str) -> dict[str, Any] | None:
        """What a step's activity is told (None: no cap applies, so it reserves nothing
        unless its worker has a default)."""
        step_cap = self.step_caps.get(step)
        if self.cap is None and step_cap is None:
            return None
        out: dict[str, Any] = {"spent_usd": str(self.spent + self.held_total)}
        if self.cap is not None:
            out["cap_usd"] = str(self.cap)
            out["remaining_usd"] = str(max(self.cap - self.spent - self.held_total, _ZERO))
        if step_cap is not None:
            out["step_cap_usd"] = str(step_cap)
        return out

    def reserve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Hold a call's worst case if it fits under the caps; say why not if it does not."""
        key, step = request["key"], request["step"]
        worst = _amount(request["worst_usd"], "worst_usd")
        if key in self.held:  # the same call asked again: its hold stands
            return {"ok": True, **self.view()}
        default = request.get("default_cap_usd")
        if self.cap is None and default is not None:
            self.cap = Decimal(str(default))
            self.from_worker_default = True
        if self.refused is not None:
            return self._no(self.refused, worst, self.cap, self.spent + self.held_total)
        used = self.spent + self.held_total
        if self.cap is not None and used + worst > self.cap:
            why = (
                f"the flow's budget of {usd(self.cap)} would be exceeded: {usd(used)} spent "
                f"or held so far, and this call's worst case is {usd(worst)}"
            )
            self.refused = why
            return self._no(why, worst, self.cap, used)
        step_cap = self.step_caps.get(step)
        if step_cap is not None:
            step_used = self.step_spent.get(step, _ZERO) + sum(
                (w for s, w in self.held.values() if s == step), _ZERO
            )
            if step_used + worst > step_cap:
                why = (
                    f"the budget of step {step!r} ({usd(step_cap)}) would be exceeded: "
                    f"{usd(step_used)} spent or held so far, and this call's worst case "
                    f"is {usd(worst)}"
                )
                return self._no(why, worst, step_cap, step_used, step=True)
        self.held[key] = (step, worst)
        self.calls += 1
        return {"ok": True, **self.view()}

    def handle(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The update: each request of the batch in order (checked by check_requests)."""
        return {
            "results": [
                self.reserve(op) if op["op"] == "reserve" else self.settle(op)
                for op in batch["ops"]
            ]
        }

    def settle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Replace a call's hold by its cost (None: unknown, it stays at its worst case)."""
        held = self.held.pop(request["key"], None)
        if held is not None:
            step, worst = held
            cost = request.get("cost_usd")
            amount = worst if cost is None else _amount(cost, "cost_usd")
            self.spent += amount
            self.step_spent[step] = self.step_spent.get(step, _ZERO) + amount
        return self.view()

    def _no(
        self,
        why: str,
        worst: Decimal,
        cap: Decimal | None,
        used: Decimal,
        *,
        step: bool = False,
    ) -> dict[str, Any]:
        return {
            "ok": False,
            "reason": why,
            "step_cap": step,
            "worst_usd": str(worst),
            "refused_cap_usd": None if cap is None else str(cap),
            "used_usd": str(used),
            **self.view(),
        }

    def view(self) -> dict[str, Any]:
        """The ``baton.budget`` query: cap, spent, held for calls in flight, stop reason."""
        return {
            "cap_usd": None if self.cap is None else str(self.cap),
            "spent_usd": str(self.spent),
            "held_usd": str(self.held_total),
            "calls": self.calls,
            "stopped": self.refused,
            "from_worker_default": self.from_worker_default,
            "steps": {
                name: {
                    "cap_usd": None if name not in self.step_caps else str(self.step_caps[name]),
                    "spent_usd": str(self.step_spent.get(name, _ZERO)),
                }
                for name in sorted({*self.step_caps, *self.step_spent})
            },
        }

    def stop_note(self) -> str | None:
        """Why no new step may start (None: they may)."""
        if self.refused is None:
            return None
        return f"budget: {self.refused}"

    def failure_message(self, workflow_name: str, not_started: list[str]) -> str:
        assert self.refused is not None
        where = 'budget_usd of baton.new(...), or the flow JSON\'s "budget_usd"'
        if self.from_worker_default:
            where = "the worker's BATON_BUDGET_USD, or set the flow's own budget_usd"
        skipped = f"; steps not started: {', '.join(not_started)}" if not_started else ""
        held = self.held_total
        lost = f" (+{usd(held)} held for calls whose cost never came back)" if held else ""
        return (
            f"flow {workflow_name!r} stopped by its budget ({BUDGET_EXCEEDED}): "
            f"{self.refused}{skipped}. Spent {usd(self.spent)}{lost}. "
            f"To let it spend more, raise {where}, then start the flow again"
        )

    def relabel(self, states: Mapping[str, Any]) -> list[str]:
        """Say "not started" for the steps the budget stopped (the cascade's wording is
        about dependencies); return their names."""
        stopped = []
        note = self.stop_note()
        for name, state in states.items():
            error = state.error or ""
            if note is not None and state.state == "cancelled" and error.endswith(note):
                state.error = "not started: " + note
                stopped.append(name)
        return stopped

    def to_carry(self) -> dict[str, Any] | None:
        """What continue-as-new hands the next run (None: nothing to carry)."""
        if not self.active and self.spent == 0 and not self.held:
            return None
        steps = dict(self.step_spent)
        for step, worst in self.held.values():
            steps[step] = steps.get(step, _ZERO) + worst
        return {
            "spent_usd": str(self.spent + self.held_total),
            "steps": {k: str(v) for k, v in steps.items()},
            "refused": self.refused,
            "calls": self.calls,
            "cap_usd": str(self.cap) if self.from_worker_default and self.cap else None,
        }


def carry_problem(carried: Any) -> str | None:
    """Why a continue-as-new input's ``budget`` is malformed (None: it is sound)."""
    if not isinstance(carried, dict):
        return "'budget' must be a JSON object"
    try:
        _amount(carried.get("spent_usd"), "budget.spent_usd", limit=_MAX_CARRIED)
        steps = carried.get("steps", {})
        if not isinstance(steps, dict) or not all(isinstance(k, str) for k in steps):
            return "'budget.steps' must map step names to amounts"
        for name, value in steps.items():
            _amount(value, f"budget.steps.{name}", limit=_MAX_CARRIED)
        cap = carried.get("cap_usd")
        if cap is not None and budget_problem(cap, "budget.cap_usd"):
            return f"'budget.cap_usd' is {cap!r}"
    except ValueError as err:
        return str(err)
    refused, calls = carried.get("refused"), carried.get("calls", 0)
    if refused is not None and not isinstance(refused, str):
        return "'budget.refused' must be a string"
    if type(calls) is not int or calls < 0:
        return "'budget.calls' must be a whole number"
    extra = sorted(set(carried) - {"spent_usd", "steps", "refused", "calls", "cap_usd"})
    return f"unknown key(s) in 'budget': {extra}" if extra else None
