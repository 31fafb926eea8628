"""Budget caps: what a cap may be, and the error a call over it raises.

A cap is a number of US dollars, kept as a :class:`~decimal.Decimal` (a float never
touches money). It is set on a flow (``baton.new(..., budget_usd="2.50")``, or
``"budget_usd"`` in flow JSON), on a step (``StepOptions(budget_usd=...)``, or
``"options": {"budget_usd": ...}``), or as a worker default (``BATON_BUDGET_USD``).
This module is pure: workflow code imports it.

Example::

    check_budget("2.50", "budget_usd")   # Decimal('2.50')
    check_budget(-1, "budget_usd")       # ValueError naming the fix
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from temporalio.exceptions import ApplicationError

__all__ = [
    "BUDGET_EXCEEDED",
    "MAX_BUDGET_USD",
    "MIN_BUDGET_USD",
    "BudgetExceeded",
    "budget_problem",
    "check_budget",
    "usd",
]

# The error type a refused call raises, and a flow stopped by its budget fails with.
BUDGET_EXCEEDED = "BudgetExceeded"
# Bounds: the ledger's sums stay exact up to ~$9e8 (pricing.MAX_CALL_COST_USD's note);
# a cap below a millionth of a dollar would refuse every call.
MAX_BUDGET_USD = Decimal(100_000_000)
MIN_BUDGET_USD = Decimal("0.000001")
_MAX_TEXT = 40


def budget_problem(value: Any, where: str = "budget_usd") -> str | None:
    """Why ``value`` is not a usable cap in USD, naming the fix; None if it is."""
    fix = f'; set {where} to a positive number of US dollars, e.g. 5 or "2.50"'
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return f"{where} is {value!r} ({type(value).__name__}), not a number{fix}"
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return f"{where} is a {len(value)}-character string, not an amount{fix}"
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        return f"{where} is {value!r}, not a number{fix}"
    if not amount.is_finite():
        return f"{where} is {value!r}, which is not a finite amount{fix}"
    if amount <= 0:
        return (
            f"{where} is {value!r}; a cap must be above 0 (to run without a cap, leave "
            f"{where} out){fix}"
        )
    if amount < MIN_BUDGET_USD:
        return f"{where} is {value!r}, below {MIN_BUDGET_USD} USD, which no call fits{fix}"
    if amount > MAX_BUDGET_USD:
        return (
            f"{where} is {value!r}, above the largest cap ({MAX_BUDGET_USD:,} USD); "
            f"to run without a cap, leave {where} out"
        )
    return None


def check_budget(value: Any, where: str = "budget_usd") -> Decimal:
    """``value`` as a Decimal cap; ``ValueError`` naming the fix if it is not one."""
    bad = budget_problem(value, where)
    if bad:
        raise ValueError(bad)
    return value if isinstance(value, Decimal) else Decimal(str(value).strip())


def usd(amount: Decimal) -> str:
    """An amount for people: ``$2.50``, ``$0.0123``; 2 to 6 decimals, no float rounding."""
    text = f"{amount.quantize(Decimal('0.000001')):f}"
    whole, _, cents = text.partition(".")
    cents = cents.rstrip("0").ljust(2, "0")
    return f"${whole}.{cents}"


class BudgetExceeded(ApplicationError):
    """A model call refused because it could take the flow (or step) over its cap.

    Raised by :func:`baton_temporal.call_llm` before the request leaves, so the refused
    call costs nothing. Non-retryable: the step fails at once, and the flow starts no
    further steps and fails with type ``"BudgetExceeded"``. ``spent_usd`` is what the
    flow (or step) had spent and held for calls in flight, ``worst_usd`` the call's worst
    case, ``cap_usd`` the cap that refused it.

    Example (inside a step)::

        try:
            reply = await baton.call_llm(job, messages, max_tokens=400)
        except baton.BudgetExceeded as err:
            return {"summary": None, "skipped": err.message}
    """

    def __init__(
        self,
        message: str,
        *,
        spent_usd: Decimal | None = None,
        cap_usd: Decimal | None = None,
        worst_usd: Decimal | None = None,
    ) -> None:
        details = {
            "spent_usd": None if spent_usd is None else str(spent_usd),
            "cap_usd": None if cap_usd is None else str(cap_usd),
            "worst_usd": None if worst_usd is None else str(worst_usd),
        }
        super().__init__(message, details, type=BUDGET_EXCEEDED, non_retryable=True)
        self.spent_usd = spent_usd
        self.cap_usd = cap_usd
        self.worst_usd = worst_usd
