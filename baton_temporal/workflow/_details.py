"""The flow's live step table in the Temporal UI (the run's "current details").

Temporal's web UI shows a workflow's *current details* (markdown, set with
``workflow.set_current_details``) under User Metadata, read through the built-in
``__temporal_workflow_metadata`` query. The flow workflow keeps them set to a table of
its steps: state, model, attempt and cost so far, so that people who live in that UI see
what a flow is doing and what it cost without a second page. Details are not a command:
setting them changes nothing in history, and needs no patch.

Step names, models and errors come from the user's flow file: every cell is escaped so
that a name such as ``<img src=x onerror=...>`` or ``a|b`` shows as text and cannot break
the table. Example::

    table = DetailsTable(["parse", "assess"])
    table.note_cost("assess", 0.0123)
    workflow.set_current_details(table.render(states))
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from temporalio import workflow

__all__ = ["MAX_DETAIL_ROWS", "DetailsTable", "cost_of", "escape_cell"]

# Rows in the table; a bigger flow shows its counts, then running and failed steps first.
# ~120 bytes a row: the whole text stays far under the server's 2 KB-per-field-times-
# many limits on metadata and renders at once in the UI.
MAX_DETAIL_ROWS = 40
# A cell longer than this is cut (an error message can be kilobytes).
MAX_CELL_CHARS = 80
NO_COST = "—"
# The Temporal UI draws markdown tables without cell padding: two no-break spaces (which
# markdown keeps) after each cell but the last keep the columns apart.
GAP = "\u00a0\u00a0"

_ORDER = {"running": 0, "waiting": 1, "failed": 2, "cancelled": 3, "pending": 4, "completed": 5}
# Characters that mean something to markdown (or to HTML inside it) in a table cell.
_MARKDOWN = "\\`*_{}[]()#+-.!|~>"
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def escape_cell(value: Any, *, limit: int = MAX_CELL_CHARS) -> str:
    """``value`` as inert text in one markdown table cell: one line, cut to ``limit``,
    HTML and markdown characters escaped."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    out = []
    for ch in text:
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def cost_of(output: Any) -> Decimal | None:
    """The cost a step's output carries (``cost_usd``), if any; None when unknown.

    Steps report cost only where the worker adds it to the step output; a run whose
    worker does not shows "—" for each step.
    """
    raw = getattr(output, "cost_usd", None)
    if raw is None and isinstance(output, Mapping):
        raw = output.get("cost_usd")
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and value >= 0 else None


def _money(value: Decimal | None) -> str:
    return NO_COST if value is None else f"${value:.6f}"


class DetailsTable:
    """Renders the step table and keeps it set as the run's current details.

    ``refresh(states)`` re-renders at most once per burst of changes: the render is
    queued on the workflow's event loop and runs after the callbacks already queued, so
    500 steps finishing in one workflow task cost one render, not 500.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self._order = {name: i for i, name in enumerate(names)}
        self._costs: dict[str, Decimal] = {}
        self._queued = False

    def note_cost(self, name: str, cost: Decimal | None) -> None:
        """Add what one finished attempt of step ``name`` cost (None: unknown)."""
        if cost is not None:
            self._costs[name] = self._costs.get(name, Decimal(0)) + cost

    def refresh(self, states: Mapping[str, Any]) -> None:
        """Set the run's current details from ``states`` soon (once per burst)."""
        if self._queued:
            return
        self._queued = True

        def render() -> None:
            self._queued = False
            workflow.set_current_details(self.render(states))

        asyncio.get_running_loop().call_soon(render)

    def render(self, states: Mapping[str, Any]) -> str:
        """The markdown: a summary line, then one row per step (at most
        :data:`MAX_DETAIL_ROWS`, the busiest first when the flow is bigger)."""
        counts: dict[str, int] = {}
        for state in states.values():
            counts[state.state] = counts.get(state.state, 0) + 1
        total = sum(self._costs.values(), Decimal(0)) if self._costs else None
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=_by_state))
        lines = [
            f"**baton flow** · {len(states)} steps: {summary} · cost so far {_money(total)}",
            "",
            "| " + " | ".join(h + GAP for h in ("step", "state", "model", "attempt")) + " | cost |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        names = list(states)
        if len(names) > MAX_DETAIL_ROWS:
            names.sort(key=lambda n: (_ORDER.get(states[n].state, 9), self._order.get(n, 0)))
            shown = sorted(names[:MAX_DETAIL_ROWS], key=lambda n: self._order.get(n, 0))
        else:
            shown = names
        for name in shown:
            state = states[name]
            cells = [
                escape_cell(name),
                escape_cell(state.state),
                escape_cell(state.model) if state.model else NO_COST,
                str(state.attempt) if state.attempt else NO_COST,
                _money(self._costs.get(name)),
            ]
            lines.append("| " + " | ".join(c + GAP for c in cells[:-1]) + f" | {cells[-1]} |")
        if len(names) > len(shown):
            lines += ["", f"… and {len(names) - len(shown)} more steps (`baton status`)."]
        return "\n".join(lines)


def _by_state(item: tuple[str, int]) -> tuple[int, str]:
    return _ORDER.get(item[0], 9), item[0]
