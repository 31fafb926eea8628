"""The model of a step from the ledger, for the step tables ``baton status`` prints.

A flow's step state knows a model only when the flow named one (``"workflow_model"`` in
its args, set by ``multi_model.configure`` or ``fan_out``). A step that picks its model
itself (``multi_model.model_for(job, default)``, as the seed's ``report`` does) shows no
model there, while the ledger has one row per call with the model that answered. The
status table fills the gap from the ledger, when the ledger can be read from here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

__all__ = ["fill_models_from_ledger", "models_by_step"]

# `baton status` must answer even when the ledger cannot: a slow database is skipped.
LEDGER_READ_TIMEOUT_S = 5.0


def models_by_step(rows: Iterable[Any]) -> dict[str, str]:
    """``{step: "model"}`` (several models, sorted, joined by ", ") from ledger rows.

    Example::

        models_by_step(await store.steps_for_workflow("wf-1"))  # {"report": "gpt-4o"}
    """
    found: dict[str, set[str]] = {}
    for row in rows:
        if row.model:
            found.setdefault(row.step, set()).add(row.model)
    return {step: ", ".join(sorted(models)) for step, models in found.items()}


async def fill_models_from_ledger(
    workflow_id: str, states: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``states`` with the ledger's model for each step that has none.

    The ledger is ``$BATON_LEDGER_URL`` or the default SQLite file, as for
    ``baton stats``; when it is missing, unreachable or slow, ``states`` come back as
    they were (the status table must not depend on it).
    """
    if not states or all(s.get("model") for s in states.values()):
        return states
    from ._commands import _open_ledger
    from ._common import CliError

    try:
        store = _open_ledger(None, must_exist=True)
    except (CliError, ValueError):
        return states
    try:
        rows = await asyncio.wait_for(
            store.steps_for_workflow(workflow_id), timeout=LEDGER_READ_TIMEOUT_S
        )
    except Exception:
        return states
    finally:
        with contextlib.suppress(Exception):
            await store.close()
    models = models_by_step(rows)
    return {name: {**s, "model": s.get("model") or models.get(name)} for name, s in states.items()}
