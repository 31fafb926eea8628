"""``baton status``: a flow's spend against its budget, from its ``baton.budget`` query.

Example (what status prints)::

    budget      $0.0042 spent + $0.0018 held of $0.01 (60%), 3 calls
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ..flow._budget import usd
from ..flow._spec import FLOW_WORKFLOW_TYPE
from ..workflow._budget import BUDGET_QUERY

__all__ = ["budget_line", "flow_budget"]


async def flow_budget(handle: Any, description: Any) -> dict[str, Any] | None:
    """The flow's budget view, or None (not a flow, no cap, no worker to answer)."""
    if description.workflow_type != FLOW_WORKFLOW_TYPE:
        return None
    try:
        view = await handle.query(BUDGET_QUERY, rpc_timeout=timedelta(seconds=5))
    except Exception:
        return None  # a flow from before budgets, or no worker to answer: say nothing
    if not isinstance(view, dict):
        return None
    if view.get("cap_usd") is None and not view.get("steps"):
        return None
    return view


def budget_line(view: dict[str, Any] | None) -> list[str]:
    """Lines for ``baton status``: spent and held against the cap, and why it stopped."""
    if view is None:
        return []
    try:
        spent = Decimal(view.get("spent_usd") or "0")
        held = Decimal(view.get("held_usd") or "0")
        cap = Decimal(view["cap_usd"]) if view.get("cap_usd") else None
    except (InvalidOperation, ValueError):
        return []
    text = f"{usd(spent)} spent"
    if held:
        text += f" + {usd(held)} held for calls in flight"
    if cap is not None:
        share = (spent + held) * 100 / cap
        text += f" of {usd(cap)} ({share:.0f}%)"
        if view.get("from_worker_default"):
            text += " (the worker's BATON_BUDGET_USD)"
    text += f", {view.get('calls', 0)} calls"
    lines = [f"budget      {text}"]
    for name, step in (view.get("steps") or {}).items():
        if step.get("cap_usd"):
            lines.append(
                f"            step {name}: {usd(Decimal(step['spent_usd']))} of "
                f"{usd(Decimal(step['cap_usd']))}"
            )
    if view.get("stopped"):
        lines.append(f"            stopped: {view['stopped']}")
    return lines
