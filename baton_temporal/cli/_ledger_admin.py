"""``baton db reconcile`` and ``baton db reprice``: repair and re-price the ledger.

* ``reconcile`` turns the call intents of runs that have ended (Temporal says the run is
  closed) into ``lost_reply`` rows: calls whose worker died before their reply was
  recorded, counted with estimated input and unknown output. A run Temporal does not find
  is left alone (a wrong ``TEMPORAL_NAMESPACE`` would make every live run "not found");
  ``--missing-as-ended`` takes such runs as ended (past their retention). A namespace
  that does not exist is refused.
* ``reprice`` prices stored rows again with the installed price data, each at its
  call's own time, and keeps the price version it used.

Example::

    baton db reconcile --older-than 10m
    baton db reprice --since 2025-06-01 --unpriced-only
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from ._common import EXIT_OK, CliError, short_error

__all__ = ["add_parsers", "run"]


def add_parsers(db_sub: Any, common: argparse.ArgumentParser, url_help: str) -> None:
    """The two subcommands, under ``baton db``."""
    from ._commands import parse_duration, parse_when

    reconcile = db_sub.add_parser(
        "reconcile",
        help="record the calls of ended runs whose reply was lost (worker killed)",
        parents=[common],
    )
    reconcile.add_argument(
        "--older-than",
        type=parse_duration,
        default=timedelta(minutes=1),
        help="only intents at least this old (default 1m)",
    )
    reconcile.add_argument(
        "--missing-as-ended",
        action="store_true",
        help="treat runs Temporal does not find as ended (only for runs past their "
        "retention; default: leave them alone and say so)",
    )
    reconcile.add_argument("--url", help=url_help)
    reprice = db_sub.add_parser(
        "reprice", help="price stored calls again with the installed prices", parents=[common]
    )
    reprice.add_argument(
        "--since", type=parse_when, help="only calls made from this date on (ISO 8601)"
    )
    reprice.add_argument(
        "--unpriced-only", action="store_true", help="only rows stored without a cost"
    )
    reprice.add_argument(
        "--prefix-match",
        action="store_true",
        help="price a model name that only starts like a known one (default: unpriced)",
    )
    reprice.add_argument("--url", help=url_help)


async def run(args: argparse.Namespace) -> int:
    from ._commands import _open_ledger

    store = _open_ledger(args.url, must_exist=True)
    try:
        if args.db_command == "reconcile":
            await _reconcile(store, args.older_than, missing_as_ended=args.missing_as_ended)
        else:
            await _reprice(store, args)
    finally:
        await store.close()
    return EXIT_OK


async def _reconcile(store: Any, older_than: timedelta, *, missing_as_ended: bool) -> None:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from ._commands import _rpc_not_found, connect_temporal

    client = await connect_temporal()
    namespace = client.namespace
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except RPCError as err:
        if _rpc_not_found(err):
            # Every run would be "not found" there: never read that as "ended".
            where = client.service_client.config.target_host
            raise CliError(
                f"namespace {namespace!r} does not exist on {where}; set TEMPORAL_NAMESPACE "
                "to the namespace your flows run in and run baton db reconcile again"
            ) from None
        # Not allowed to describe it (a namespace-scoped key), say: runs are still looked
        # up one by one, and one that is not found is never taken for ended.
    missing: list[str] = []

    async def has_ended(workflow_id: str, run_id: str) -> bool | None:
        try:
            described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        except RPCError as err:
            if _rpc_not_found(err):
                missing.append(f"{workflow_id} (run {run_id})")
                # Past its retention, or started in another namespace: not known.
                return True if missing_as_ended else None
            raise CliError(f"cannot describe workflow {workflow_id}: {short_error(err)}") from err
        return described.status != WorkflowExecutionStatus.RUNNING

    result = await store.reconcile_ended(has_ended, older_than=older_than)
    print(
        f"{result.lost_replies} call(s) of ended runs recorded as lost replies in {store.url}; "
        f"{result.still_running} run(s) still going were left alone"
    )
    if result.not_found:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        print(
            f"{result.not_found} run(s) not found in namespace {namespace!r} were left alone "
            f"(their intents stay pending): {shown}. If they ran in another namespace, set "
            "TEMPORAL_NAMESPACE; if they ended past their retention, run again with "
            "--missing-as-ended"
        )
    elif missing_as_ended and missing:
        print(f"{len(missing)} run(s) not found in namespace {namespace!r} were taken as ended")


async def _reprice(store: Any, args: argparse.Namespace) -> None:
    from ..pricing import ChainPricer, GenAIPricesPricer, Pricer, pricer_from_env

    pricer: Pricer = pricer_from_env()
    if args.prefix_match:
        pricer = ChainPricer(pricer, GenAIPricesPricer(prefix_match=True))
    result = await store.reprice(since=args.since, unpriced_only=args.unpriced_only, pricer=pricer)
    print(
        f"repriced {result.rows} row(s) in {store.url}: {result.changed} changed, "
        f"{result.priced} priced, {result.unpriced} still unpriced"
        + (f" (prices: {result.price_version})" if result.price_version else "")
    )
