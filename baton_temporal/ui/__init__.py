"""The cost page: ``baton ui`` (also served by ``baton dev`` and ``baton demo --keep``).

A small local web page that reads Temporal (list, describe, query, history) and the
ledger: the latest flows with status, duration and cost; one flow's DAG with each step's
state, model, attempts, tokens and cost, updated live over Server-Sent Events that
follow the run's history; cost by model over time. No extra service, no build step.

Example::

    from baton_temporal.ui import UIServer

    async with UIServer(client, store, port=8234) as ui:
        print("cost page:", ui.url)
        await stop.wait()
"""

from ._follow import HistoryFollower
from ._server import UIServer

__all__ = ["HistoryFollower", "UIServer"]
