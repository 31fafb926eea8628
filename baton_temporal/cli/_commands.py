"""The commands of the ``baton`` program and its argument parser (see the package doc)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .._terminal import printable, shown
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    CliError,
    describe_failure,
    short_error,
)
from ._hints import ledger_hint, reused_id_note, worker_hint
from ._invocation import baton_command
from ._step_modules import steps_importable_from_cwd

__all__ = ["CliError", "main"]


# Longer than any ledger has existed; anything above is a typo (and datetime.now() minus
# 1,000,000 days is before year 1, an OverflowError).
MAX_DURATION = timedelta(days=36525)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` -> timedelta, at most 100 years."""
    # ASCII digits only ([0-9], not \d: "٣d" is not a duration), a dot, one unit.
    found = re.fullmatch(r"\s*([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*([smhdw])\s*", text or "")
    if not found:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}; use a number and a unit: 90s, 30m, 12h, 7d, 2w"
        )
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    seconds = (
        float(found.group(1))
        * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
    )
    if seconds > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(
            f"duration {text.strip()!r} is longer than 100 years (36525d); use a shorter one, "
            "e.g. 90d or 520w"
        )
    return timedelta(**{unit[found.group(2)]: float(found.group(1))})


def parse_when(text: str) -> datetime:
    """An ISO date or date-time; without a time zone it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {text!r}; use ISO 8601, e.g. 2025-06-01 or 2025-06-01T12:00:00+02:00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    # Models come from the ledger (what provider replies said), errors from providers.
    rows = [[shown(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def _state_dict(state: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.asdict(state)
    return dict(state)


def _took(state: Mapping[str, Any]) -> str:
    try:
        start = datetime.fromisoformat(state["started_at"])
        end = datetime.fromisoformat(state["ended_at"])
    except (KeyError, TypeError, ValueError):
        return "-"
    return f"{(end - start).total_seconds():.2f}s"


def format_step_states(states: Mapping[str, Any]) -> str:
    """A table of a flow's steps: state, model, attempt, duration, error."""
    if not states:
        return "no steps reported yet"
    rows = []
    ordered = sorted(
        ((name, _state_dict(raw)) for name, raw in states.items()),
        key=lambda item: (item[1].get("started_at") or "~", item[0]),
    )
    for name, s in ordered:
        error = (s.get("error") or "").splitlines()
        cells = [
            name,
            s.get("state") or "-",
            s.get("model") or "-",
            str(s.get("attempt") or "-"),
            _took(s),
            (error[0][:100] + ("..." if len(error[0]) > 100 else "")) if error else "",
        ]
        # Names, models and errors come from flow files, workers and providers: shown
        # as text, never as terminal control sequences.
        rows.append([printable(" ".join(str(c).split())) for c in cells])
    headers = ["step", "state", "model", "attempt", "took", "error"]
    if not any(r[-1] for r in rows):
        headers, rows = headers[:-1], [r[:-1] for r in rows]
    return _table(headers, rows, right={3, 4})


# ---------------------------------------------------------------------- temporal access


def temporal_address() -> str:
    """The address ``connect()`` will use (for messages)."""
    try:
        from temporalio.envconfig import ClientConfig

        config = ClientConfig.load_client_connect_config()
        return str(config.get("target_host") or "localhost:7233")
    except Exception:
        return os.environ.get("TEMPORAL_ADDRESS") or "localhost:7233"


async def connect_temporal() -> Any:
    from .._connection import TemporalSettingsError, explain_connect_failure
    from ..worker import connect

    try:
        return await connect()
    except TemporalSettingsError as err:
        raise CliError(str(err)) from None
    except ConnectionError as err:
        cause = err.__cause__ or err
        # The same sentence as the worker's, with the transport error shortened.
        raise CliError(
            explain_connect_failure(temporal_address(), _Short(short_error(cause)), os.environ)
        ) from err


class _Short(Exception):
    """An error whose text is already shortened for the terminal."""


def _rpc_not_found(err: BaseException) -> bool:
    from temporalio.service import RPCError, RPCStatusCode

    return isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND


async def _describe(client: Any, workflow_id: str) -> Any:
    from temporalio.service import RPCError

    handle = client.get_workflow_handle(workflow_id)
    try:
        return handle, await handle.describe()
    except RPCError as err:
        if _rpc_not_found(err):
            raise CliError(
                f"no workflow {workflow_id!r} in namespace {client.namespace!r} at "
                f"{client.service_client.config.target_host}"
            ) from None
        raise CliError(f"cannot describe workflow {workflow_id}: {short_error(err)}") from err


# ------------------------------------------------------------------------------- flows


def load_flow_file(path: str) -> Any:
    """A :class:`baton.Flow` from a JSON or YAML file (by extension; else by content)."""
    import baton_temporal as baton

    from .._files import MAX_FLOW_FILE_BYTES, FileRefused, YamlRefused, load_yaml, read_small_file

    file = Path(path)
    try:
        text = read_small_file(file, limit=MAX_FLOW_FILE_BYTES, what="flow file")
    except FileNotFoundError:
        raise CliError(f"no flow file {path}; write one with flow.to_json()") from None
    except FileRefused as err:
        raise CliError(str(err)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read the flow file {path}: {short_error(err)}") from None
    is_yaml = file.suffix.lower() in (".yaml", ".yml") or (
        file.suffix.lower() != ".json" and not text.lstrip().startswith(("{", "["))
    )
    try:
        if not is_yaml:
            return baton.Flow.from_json(text)
        import yaml

        try:
            data = load_yaml(text)
        except YamlRefused as err:
            raise baton.FlowError(f"flow YAML refused: {err}") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or short_error(err)
            raise baton.FlowError(f"flow YAML is malformed{where}: {problem}") from None
        if not isinstance(data, Mapping):
            raise baton.FlowError(
                f"a flow file holds one mapping (baton_flow, workflow_name, steps...), got "
                f"{type(data).__name__}"
            )
        return baton.Flow.from_json(data)
    except baton.FlowError as err:
        raise CliError(f"{path}: {err}") from None
    except RecursionError:
        raise CliError(f"{path}: the flow is nested too deeply to read; flatten its args") from None


async def _warn_if_no_worker(client: Any, task_queue: str) -> None:
    """A hint on stderr when no worker polls the queue (the flow would just wait)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    with contextlib.suppress(Exception):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if not response.pollers:
            baton = baton_command()
            print(
                f"baton: note: no worker is polling task queue {task_queue!r} yet; the flow "
                f"waits until one does (`{baton} worker --task-queue {task_queue} --steps "
                f"MODULE`, or `{baton} dev`)",
                file=sys.stderr,
            )


async def cmd_start(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from .._routing import (
        ALLOWED_TASK_QUEUES_ENV,
        allowed_task_queues_from,
        disallowed_task_queues,
    )

    flow = load_flow_file(args.file)
    task_queue = args.task_queue or os.environ.get("BATON_TASK_QUEUE") or "baton"
    try:
        allowed = allowed_task_queues_from(args.allow_task_queue)
    except ValueError as err:
        raise CliError(str(err)) from None
    if allowed is not None and task_queue not in allowed:
        raise CliError(
            f"task queue {task_queue!r} is not allowed here (allowed: "
            f"{', '.join(sorted(allowed))}); pick one with --task-queue, or add it to "
            f"{ALLOWED_TASK_QUEUES_ENV}"
        )
    problems = disallowed_task_queues(flow, allowed)
    if problems:
        raise CliError(f"{args.file}: " + "; ".join(problems))
    client = await connect_temporal()
    workflow_id = args.id or flow.workflow_id
    # A chosen id may have run before (a generated one is new): say so, as stats add up.
    reused = (
        None if flow.generated_id and not args.id else await reused_id_note(client, workflow_id)
    )
    try:
        handle = await flow.start(client, task_queue=task_queue, id=workflow_id)
    except WorkflowAlreadyStartedError:
        raise CliError(
            f"a workflow with id {workflow_id!r} is already running (or its id may not be "
            "reused); pass --id NEW_ID, or drop workflow_id from the file for a fresh one"
        ) from None
    print(
        f"started flow {flow.workflow_name!r} as workflow {workflow_id} on task queue "
        f"{task_queue!r}",
        flush=True,
    )
    if reused:
        print(f"baton: {reused}", file=sys.stderr)
    await _warn_if_no_worker(client, task_queue)
    if not args.wait:
        print(f"follow it:  {baton_command()} status {workflow_id} --watch")
        return EXIT_OK
    from ._ledger_models import fill_models_from_ledger

    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        with contextlib.suppress(Exception):
            states = await handle.query("baton.steps", rpc_timeout=timedelta(seconds=5))
            states = {n: _state_dict(s) for n, s in dict(states).items()}
            filled = await fill_models_from_ledger(workflow_id, states) or states
            print(format_step_states(filled), flush=True)
        raise CliError(describe_failure(workflow_id, err)) from None
    steps = {name: _state_dict(s) for name, s in result.steps.items()}
    steps = await fill_models_from_ledger(workflow_id, steps) or steps
    if args.json:
        print(json.dumps(_flow_result_json(result, steps), indent=2, default=str))
        return EXIT_OK
    print()
    print(format_step_states(steps))
    print("\nresults:")
    print(json.dumps(result.results, indent=2, default=str))
    if result.failed:
        print(f"\nfailed but tolerated by their dependents: {', '.join(result.failed)}")
    return EXIT_OK


def _flow_result_json(result: Any, steps: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": result.workflow_id,
        "workflow_name": result.workflow_name,
        "status": result.status,
        "failed": list(result.failed),
        "steps": dict(steps),
        "results": result.results,
    }


# ------------------------------------------------------------------------------ status


async def _step_states(handle: Any, description: Any) -> tuple[dict[str, Any] | None, str]:
    """(states, note). A finished flow's states come from its result (no worker needed);
    otherwise from the ``baton.steps`` query, which a worker of the queue answers."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    from ..workflow import FlowResult

    status = description.status
    note = ""
    if status == WorkflowExecutionStatus.COMPLETED:
        try:
            result = await handle.client.get_workflow_handle(
                handle.id, run_id=description.run_id, result_type=FlowResult
            ).result()
            return {n: _state_dict(s) for n, s in result.steps.items()}, note
        except Exception:
            pass  # not a baton flow's result: try the query
    elif status == WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            note = describe_failure(handle.id, err)
        except Exception:
            pass
    try:
        states = await handle.query("baton.steps", rpc_timeout=timedelta(seconds=5))
    except Exception as err:
        detail = short_error(err)
        if "unknown queryType" in detail or "baton.steps" in detail:
            why = (
                f"it does not answer the baton.steps query ({description.workflow_type}); "
                + ledger_hint(handle.id)
            )
        else:
            why = (
                f"no worker of task queue {description.task_queue!r} answered ({detail}); "
                + worker_hint(description.workflow_type, description.task_queue, handle.id)
            )
        return None, "; ".join(filter(None, [note, f"step states unavailable: {why}"]))
    return {n: _state_dict(s) for n, s in dict(states or {}).items()}, note


def _status_text(handle: Any, description: Any, states: Any, note: str, budget: Any = None) -> str:
    status = description.status.name if description.status else "UNKNOWN"
    lines = [
        f"workflow    {handle.id}",
        f"type        {description.workflow_type}   task queue {description.task_queue}",
        f"status      {status}",
        f"started     {description.start_time:%Y-%m-%d %H:%M:%S %Z}"
        + (f"   closed {description.close_time:%H:%M:%S}" if description.close_time else ""),
    ]
    if budget is not None:
        from ._budget import budget_line

        lines += budget_line(budget)
    if states is not None:
        counts: dict[str, int] = {}
        for s in states.values():
            counts[s["state"]] = counts.get(s["state"], 0) + 1
        lines.append("steps       " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        lines += ["", format_step_states(states)]
        errors = [(n, s["error"]) for n, s in states.items() if s.get("error")]
        if errors:
            lines.append("")
            lines += [f"{n}: {' '.join(str(e).split())}" for n, e in errors]
    retrying = _retrying(description)
    if retrying:
        lines += ["", "waiting to retry:"] + [f"  {r}" for r in retrying]
    if note:
        lines += ["", note]
    return printable("\n".join(lines))


def _retrying(description: Any) -> list[str]:
    """Steps between attempts, with why the last one failed and when the next starts:
    a provider's capped retry-after, a rate limit, an outage, seen while the run waits."""
    lines = []
    raw = getattr(description, "raw_description", None)
    for pending in getattr(raw, "pending_activities", None) or []:
        if not pending.HasField("last_failure"):
            continue
        when = ""
        if pending.HasField("next_attempt_schedule_time"):
            at = pending.next_attempt_schedule_time.ToDatetime(tzinfo=UTC)
            when = f"; next attempt at {at:%H:%M:%S} UTC"
        message = " ".join(pending.last_failure.message.split())
        lines.append(
            f"{pending.activity_type.name} (activity {pending.activity_id}): attempt "
            f"{pending.attempt - 1} failed: {message}{when}"
        )
    return lines


async def cmd_status(args: argparse.Namespace) -> int:
    client = await connect_temporal()
    async with contextlib.AsyncExitStack() as stack:
        return await _status_loop(client, args, stack)


async def _status_loop(client: Any, args: argparse.Namespace, stack: Any) -> int:
    from ._budget import flow_budget
    from ._ledger_models import fill_models_from_ledger
    from ._waiting import ledger_wait  # here: `baton --help` loads no temporalio

    last = None
    follower = None
    while True:
        handle, description = await _describe(client, args.workflow_id)
        states, note = await _step_states(handle, description)
        states = await fill_models_from_ledger(handle.id, states)
        note = "\n".join(filter(None, [ledger_wait(description), note]))
        budget = await flow_budget(handle, description)
        text = _status_text(handle, description, states, note, budget)
        if args.json:
            text = json.dumps(
                {
                    "workflow_id": handle.id,
                    "status": description.status.name if description.status else None,
                    "steps": states,
                    "retrying": _retrying(description),
                    "budget": budget,
                    "note": note or None,
                },
                indent=2,
                default=str,
            )
        if text != last:
            if last is not None:
                print(f"\n--- {datetime.now():%H:%M:%S}")
            # Retry causes and notes carry provider-chosen text: printed as text.
            print(text if args.json else printable(text), flush=True)
            last = text
        if not args.watch or description.close_time is not None:
            return EXIT_OK
        if follower is None:
            # Woken by the run's history (each change of a step appends events), not by
            # a timer; see ui/_follow.py.
            from ..ui import HistoryFollower

            follower = await stack.enter_async_context(HistoryFollower(client, handle.id))
            await follower.wait(refresh=args.interval)  # the events so far
        in_flight = any(s["state"] in ("running", "waiting") for s in (states or {}).values())
        await follower.wait(refresh=args.interval if in_flight or states is None else None)


# ------------------------------------------------------------------------------- ledger


class _NoPricing:
    """Reading the ledger prices nothing: a broken price setting must not stop a report."""

    def cost(self, usage: Any) -> None:
        return None


def _open_ledger(url: str | None, *, must_exist: bool) -> Any:
    """A store on ``--url`` / $BATON_LEDGER_URL / the default SQLite file. An SQLite file
    that does not exist is an error when reading (SQLite would create an empty one)."""
    from ..ledger import LedgerStore, default_ledger_url
    from ..ledger._store import to_async_url

    resolved = url or default_ledger_url()
    parsed = to_async_url(resolved)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database)
        if must_exist and not path.exists():
            source = (
                "--url"
                if url
                else (
                    "BATON_LEDGER_URL"
                    if os.environ.get("BATON_LEDGER_URL")
                    else "the default ledger"
                )
            )
            raise CliError(
                f"no ledger at {path} ({source}); it is created by the first worker that "
                "records usage, or by `baton db upgrade`; point --url / BATON_LEDGER_URL at "
                "yours"
            )
        if not must_exist:
            path.parent.mkdir(parents=True, exist_ok=True)
    return LedgerStore.from_url(parsed, pricer=_NoPricing())


async def cmd_stats(args: argparse.Namespace) -> int:
    from .. import stats

    store = _open_ledger(args.url, must_exist=True)
    try:
        if args.stats_command == "totals":
            totals = await stats.workflow_totals(args.workflow_id, store=store)
            if args.json:
                print(json.dumps(totals.model_dump(mode="json"), indent=2))
            else:
                print(stats.format_totals(totals))
        elif args.stats_command == "steps":
            rows = await stats.steps_for_workflow(args.workflow_id, store=store)
            if args.json:
                print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
            elif not rows:
                print(f"no LLM usage recorded for workflow {args.workflow_id}")
            else:
                print(stats.format_steps(rows))
        else:
            now = datetime.now(UTC)
            if args.since is not None and (args.from_ or args.to):
                raise CliError("give either --since or --from/--to, not both")
            if args.from_ or args.to:
                start = args.from_ or datetime(1970, 1, 1, tzinfo=UTC)
                end = args.to or now
            else:
                if args.since is not None and args.since <= timedelta(0):
                    raise CliError("--since 0 covers no time; give an age such as 12h or 7d")
                start, end = now - (args.since or timedelta(days=7)), now
            if start >= end:
                raise CliError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
            models = await stats.cost_by_model(start, end, store=store)
            if args.json:
                print(json.dumps([m.model_dump(mode="json") for m in models], indent=2))
            else:
                print(f"cost by model, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
                print(stats.format_cost_by_model(models))
    finally:
        await store.close()
    return EXIT_OK


# Pruning rows younger than this deletes (nearly) everything: it needs --yes.
PRUNE_CONFIRM_BELOW = timedelta(days=1)


def _age(age: timedelta) -> str:
    seconds = age.total_seconds()
    return f"{seconds:g}s" if seconds < 3600 else f"{seconds / 3600:g}h"


async def cmd_db(args: argparse.Namespace) -> int:
    from ..ledger import safe_url

    if args.db_command in ("reconcile", "reprice"):
        from . import _ledger_admin

        return await _ledger_admin.run(args)
    if args.db_command == "upgrade":
        from ._migrate import upgrade_when_reachable

        store = _open_ledger(args.url, must_exist=False)
        try:
            await upgrade_when_reachable(store, args.wait)
        finally:
            await store.close()
        print(f"ledger {safe_url(store.url)} is up to date")
        return EXIT_OK
    if args.older_than < PRUNE_CONFIRM_BELOW and not args.yes:
        raise CliError(
            f"--older-than {_age(args.older_than)} deletes the usage recorded until "
            f"{_age(args.older_than)} ago, most likely every row; if that is what you want, "
            "run again with --yes"
        )
    store = _open_ledger(args.url, must_exist=True)
    try:
        pruned = await store.prune(args.older_than)
    finally:
        await store.close()
    cutoff = datetime.now(UTC) - args.older_than
    print(
        f"deleted {pruned.stats_rows} usage rows and {pruned.debug_rows} debug log rows "
        f"recorded before {cutoff:%Y-%m-%d %H:%M} UTC from {store.url}"
    )
    # Stored payloads share the ledger's retention (see baton_temporal.payloads).
    from ..payloads import prune_payloads

    payloads = await prune_payloads(args.older_than.total_seconds(), args.payload_store)
    print(f"deleted {payloads} stored payloads last written before then")
    return EXIT_OK


# ------------------------------------------------------------------------------- worker


async def cmd_worker(args: argparse.Namespace) -> int:
    from ..ledger import LedgerNotMigrated, LedgerStore, LedgerUnavailable
    from ..worker import WorkerSettings, load_steps, run_worker

    _console_logging(args, level=logging.INFO, timestamps=True)
    from .._routing import allowed_task_queues_from
    from ..llm import LLMConfig
    from ..llm._clients import transport_from_env
    from ..llm._errors import max_retry_after

    try:
        settings = WorkerSettings.from_env()
        if args.allow_task_queue:
            settings = dataclasses.replace(
                settings, allowed_task_queues=allowed_task_queues_from(args.allow_task_queue)
            )
        LLMConfig.from_env()  # a malformed API key stops the worker here, not every call
        max_retry_after()
        transport_from_env()
        _check_tracing()
    except ValueError as err:
        raise CliError(str(err)) from None
    modules = tuple(dict.fromkeys([*settings.step_modules, *(args.steps or [])]))
    if not modules:
        raise CliError(
            "no steps to run; pass --steps MODULE (repeatable) or set BATON_STEPS, e.g. "
            "--steps baton_temporal.examples.seed"
        )
    steps_importable_from_cwd()
    try:
        load_steps(modules)
    except ImportError as err:
        raise CliError(str(err)) from None
    settings = dataclasses.replace(
        settings,
        step_modules=modules,
        task_queue=args.task_queue or settings.task_queue,
        health_port=settings.health_port if args.health_port is None else args.health_port,
        metrics_port=settings.metrics_port if args.metrics_port is None else args.metrics_port,
    )
    from .._connection import TemporalSettingsError, check_tls_files

    try:  # settings that cannot work stop us before anything starts
        check_tls_files(os.environ)
    except TemporalSettingsError as err:
        raise CliError(str(err)) from None
    # Check the ledger first: a worker would refuse to start on an unmigrated PostgreSQL.
    store = LedgerStore.from_url()
    try:
        await store.check_schema()
    except LedgerNotMigrated:
        if store.dialect != "sqlite":
            raise
    except LedgerUnavailable as err:
        logging.getLogger("baton_temporal.worker").warning("%s", err)
    finally:
        await store.close()
    if settings.metrics_port is not None:  # before the client: it picks the runtime
        from ..metrics import enable_prometheus

        try:
            enable_prometheus(settings.metrics_port)
        except ValueError as err:
            raise CliError(str(err)) from None
    client = await connect_temporal()
    try:
        await run_worker(settings, client=client)
    except ValueError as err:  # a busy health port, a bad setting found late
        raise CliError(str(err)) from None
    return EXIT_OK


# ----------------------------------------------------------------------------------- ui


async def cmd_ui(args: argparse.Namespace) -> int:
    from ._ui import run_ui

    return await run_ui(args)


# ---------------------------------------------------------------------------- demo/dev


async def cmd_demo(args: argparse.Namespace) -> int:
    from . import _demo

    _console_logging(args, level=logging.WARNING, timestamps=False)
    return await _demo.run_demo(args)


async def cmd_dev(args: argparse.Namespace) -> int:
    from . import _demo

    _console_logging(args, level=logging.WARNING, timestamps=False)
    try:
        _check_tracing()
    except ValueError as err:
        raise CliError(str(err)) from None
    return await _demo.run_dev(args)


def _check_tracing() -> None:
    """With tracing switched on by the environment, set it up now: a missing ``otel``
    extra or a bad switch is a one-line error before anything starts (the worker's
    plugin then reuses what this made)."""
    from ..tracing import start_tracing, tracing_from_env

    if tracing_from_env():
        try:
            start_tracing()
        except ImportError as err:
            raise CliError(str(err)) from None


def _console_logging(args: argparse.Namespace, *, level: int, timestamps: bool) -> None:
    """One line per failed step attempt; tracebacks with --verbose or BATON_LOG_LEVEL=debug."""
    from ..logs import configure_logging

    verbose = bool(getattr(args, "verbose", False) or getattr(args, "debug", False)) or None
    try:
        configure_logging(verbose, level=level, timestamps=timestamps)
    except ValueError as err:
        raise CliError(str(err)) from None


# ------------------------------------------------------------------------------- parser


def _port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


VERBOSE_HELP = (
    "print the traceback of every failed step attempt (default: one line each; also "
    "BATON_LOG_LEVEL=debug)"
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of errors",
    )
    parser = argparse.ArgumentParser(
        prog="baton",
        description="DAG workflows of LLM steps on Temporal, with a cost ledger.",
        epilog="Start with `baton demo` (no keys, no servers needed).",
    )
    parser.add_argument("--debug", action="store_true", default=False, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, func: Callable[..., Any], **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=kw.pop("description", help), parents=[common], **kw
        )
        p.set_defaults(func=func)
        return p

    demo = add(
        "demo",
        "run the seed's multi-model flow on embedded Temporal and show what it cost",
        cmd_demo,
        description=(
            "Start an embedded Temporal dev server (with web UI), an SQLite ledger and a "
            "worker; run parse -> assess on several models -> synthesis -> report on a "
            "document; print live step states, the synthesis and the cost per step and "
            "per model; stop everything. Models: BATON_DEMO_MODELS if set; else "
            "BATON_OPENAI_COMPATIBLE_BASE_URL with BATON_DEMO_MODEL (default llama3.2); else "
            "the seed models whose ANTHROPIC_API_KEY / OPENAI_API_KEY is set; else an "
            "OFFLINE stand-in model."
        ),
    )
    demo.add_argument("--text", metavar="FILE", help="assess this document instead of the sample")
    demo.add_argument("--keep", action="store_true", help="keep running after the run (Ctrl-C)")
    demo.add_argument("--json", action="store_true", help="print the final result as JSON")
    demo.add_argument(
        "--offline", action="store_true", help="use the stand-in model even if keys are set"
    )
    demo.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)

    dev = add(
        "dev",
        "run embedded Temporal (with UI), the ledger and a worker until Ctrl-C",
        cmd_dev,
    )
    dev.add_argument(
        "--steps",
        action="append",
        metavar="MODULE",
        help="also register the steps of this module (repeatable; BATON_STEPS adds more)",
    )
    dev.add_argument("--task-queue", help="task queue (default $BATON_TASK_QUEUE or baton)")
    dev.add_argument("--port", type=int, help="Temporal frontend port (default 7233 if free)")
    dev.add_argument("--ui-port", type=int, help="web UI port (default 8233 if free)")
    dev.add_argument(
        "--page-port", type=_port_number, help="cost page port (default 8234 if free, else any)"
    )
    dev.add_argument(
        "--ledger-url", help="ledger database (default $BATON_LEDGER_URL or .baton/ledger.sqlite3)"
    )
    dev.add_argument(
        "--db-filename", help="keep Temporal's history in this SQLite file across restarts"
    )
    dev.add_argument(
        "--offline", action="store_true", help="answer every LLM call with the stand-in model"
    )
    dev.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)

    start = add(
        "start",
        "start a flow from a JSON or YAML file",
        cmd_start,
        description=(
            "Start a flow written by flow.to_json() (or the same data as YAML) on Temporal "
            "at $TEMPORAL_ADDRESS (default localhost:7233)."
        ),
    )
    start.add_argument("file", help="flow file (.json, .yaml or .yml)")
    start.add_argument("--wait", action="store_true", help="wait for the flow and print results")
    start.add_argument("--task-queue", help="task queue (default $BATON_TASK_QUEUE or baton)")
    start.add_argument("--id", help="workflow id (default: the file's workflow_id, or a new one)")
    start.add_argument("--json", action="store_true", help="with --wait: print the result as JSON")
    start.add_argument(
        "--allow-task-queue",
        action="append",
        metavar="QUEUE",
        help="refuse flows routing steps elsewhere (repeat; default $BATON_ALLOWED_TASK_QUEUES)",
    )

    status = add("status", "show each step's state of a flow", cmd_status)
    status.add_argument("workflow_id")
    status.add_argument("--watch", action="store_true", help="re-print on change until it ends")
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="with --watch: changes show as they happen; while steps run, also re-read every "
        "this many seconds (a retry of a step writes no history event)",
    )
    status.add_argument("--json", action="store_true", help="print as JSON")

    ui = add(
        "ui",
        "serve the cost page: flows, their DAG and cost, live (read-only, localhost)",
        cmd_ui,
        description=(
            "A local web page of the flows on Temporal at $TEMPORAL_ADDRESS and the ledger: "
            "status, duration and cost of each flow; one flow's DAG with each step's state, "
            "model, attempts, tokens and cost, live; cost by model over time. Read-only."
        ),
    )
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; anything else exposes your ledger)",
    )
    ui.add_argument(
        "--port", type=_port_number, default=8234, help="port (default 8234; 0 picks a free one)"
    )
    ui.add_argument(
        "--url", help="ledger database URL (default $BATON_LEDGER_URL or .baton/ledger.sqlite3)"
    )

    stats = add("stats", "tokens and cost from the ledger", cmd_stats)
    stats_sub = stats.add_subparsers(dest="stats_command", metavar="WHAT", required=True)
    ledger_url_help = "ledger database URL (default $BATON_LEDGER_URL or .baton/ledger.sqlite3)"
    for name, help in (
        ("totals", "totals of one workflow"),
        ("steps", "per step and model of one workflow"),
    ):
        p = stats_sub.add_parser(name, help=help, description=help, parents=[common])
        p.add_argument("workflow_id")
        p.add_argument("--url", help=ledger_url_help)
        p.add_argument("--json", action="store_true", help="print as JSON")
    models = stats_sub.add_parser(
        "models",
        help="cost per model over a period",
        description="Cost per model over a period: --since 7d (default), or --from/--to.",
        parents=[common],
    )
    models.add_argument(
        "--since", metavar="AGE", type=parse_duration, help="this far back: 90m, 12h, 7d, 2w"
    )
    models.add_argument(
        "--from", dest="from_", metavar="ISO", type=parse_when, help="ISO date/time (UTC)"
    )
    models.add_argument("--to", metavar="ISO", type=parse_when, help="ISO date/time; default now")
    models.add_argument("--url", help=ledger_url_help)
    models.add_argument("--json", action="store_true", help="print as JSON")

    worker = add(
        "worker",
        "run a worker (settings from TEMPORAL_*/BATON_* environment variables)",
        cmd_worker,
    )
    worker.add_argument(
        "--steps", action="append", metavar="MODULE", help="step module (repeatable; +BATON_STEPS)"
    )
    worker.add_argument("--task-queue", help="task queue (default $BATON_TASK_QUEUE or baton)")
    worker.add_argument(
        "--health-port",
        type=_port_number,
        metavar="PORT",
        help="serve /livez and /readyz on this port (default $BATON_HEALTH_PORT; off)",
    )
    worker.add_argument(
        "--metrics-port",
        type=_port_number,
        metavar="PORT",
        help="serve Prometheus metrics on this port (default $BATON_METRICS_PORT; off)",
    )
    worker.add_argument(
        "--allow-task-queue",
        action="append",
        metavar="QUEUE",
        help="fail runs routing steps to other queues (repeat; default $BATON_ALLOWED_TASK_QUEUES)",
    )
    worker.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)

    db = add("db", "manage the ledger database", cmd_db)
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser(
        "upgrade", help="create or upgrade the ledger tables", parents=[common]
    )
    upgrade.add_argument("--url", help=ledger_url_help)
    upgrade.add_argument(
        "--wait",
        type=parse_duration,
        metavar="AGE",
        help="retry while the database does not accept connections yet, up to this long "
        "(e.g. 2m; for containers started beside their database)",
    )
    prune = db_sub.add_parser(
        "prune", help="delete usage and debug rows older than a duration", parents=[common]
    )
    prune.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        help="e.g. 30d, 12w (units s, m, h, d, w; at most 100 years: 36525d)",
    )
    prune.add_argument(
        "--yes",
        action="store_true",
        help="confirm a prune of rows younger than a day (under 1d deletes nearly everything)",
    )
    prune.add_argument("--url", help=ledger_url_help)
    prune.add_argument(
        "--payload-store",
        help="payload store to prune as well (default $BATON_PAYLOAD_STORE; 'off' for none)",
    )

    from . import _ledger_admin

    _ledger_admin.add_parsers(db_sub, common, ledger_url_help)
    return parser


# --------------------------------------------------------------------------------- main


def _explain(err: BaseException, url: str | None = None) -> str | None:
    """The one-line message of an error the user can act on (None: unexpected)."""
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError

    from ..flow import FlowError
    from ..ledger import LedgerError, LedgerNotMigrated
    from ..llm import LLMConfigError
    from ..payloads import PayloadStoreConfigError
    from ..pricing import PricingError

    if isinstance(err, CliError | LLMConfigError):
        return str(err)
    if isinstance(err, LedgerNotMigrated) and url:
        text = " ".join(str(err).split())
        return text.replace("`baton db upgrade`", f"`baton db upgrade --url {url}`")
    if isinstance(err, LedgerError | FlowError | PricingError | PayloadStoreConfigError):
        return " ".join(str(err).split())
    if isinstance(err, WorkflowFailureError):
        return describe_failure("?", err)
    if isinstance(err, RPCError):
        return f"Temporal at {temporal_address()} refused the request: {short_error(err)}"
    if isinstance(err, ConnectionError):
        return short_error(err)
    return None


def _exit_now(code: int) -> None:
    """End the program without interpreter finalization.

    temporalio's Rust core keeps threads that may still call into Python while the
    interpreter tears down, which aborts a short-lived client process now and then with
    "Fatal Python error: PyGILState_Release" (temporalio/sdk-python#300). Everything
    the command had to do is done: flush and leave.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _is_the_program() -> bool:
    """True when this process is the ``baton`` command itself (not a caller of main)."""
    return Path(sys.argv[0]).name in ("baton", "baton.exe")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``baton`` command; returns the exit status.

    Run as the ``baton`` program (``argv`` None), it exits the process itself once done.
    """
    code = _run(argv)
    if argv is None and _is_the_program():
        _exit_now(code)
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return asyncio.run(args.func(args))
    except BrokenPipeError:
        # The reader went away (`baton ... | head`): nothing more to say to it.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_UNEXPECTED
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("baton: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        message = _explain(err, getattr(args, "url", None))
        if debug:
            traceback.print_exc()
        # Causes carry provider-chosen text (error messages): printed as text, line by line.
        if message is None:
            print(
                f"baton: unexpected error: {type(err).__name__}: {printable(short_error(err))} "
                "(run again with --debug for the traceback)",
                file=sys.stderr,
            )
            return EXIT_UNEXPECTED
        print(f"baton: {printable(message)}", file=sys.stderr)
        return EXIT_USAGE
