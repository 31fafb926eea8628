"""Record the replay corpus: run each scenario on a real dev server and save its history.

    python -m tests.histories.record                      # this checkout -> tests/histories/current
    python -m tests.histories.record --code /work/old-release --release 527f01c
    python -m tests.histories.record --only cascade,quorum_slow_model

``--code DIR`` records with the baton_temporal (and the seed app) of another checkout,
e.g. a ``git worktree`` of the previous release: the scenarios use only the public API,
which both layouts share. Each run's history lands in ``tests/histories/<release>/
<scenario>.json``, with ``manifest.json`` beside it (scenario, workflow type and id,
commit, outcome, event count). A scenario whose outcome is not the expected one stops
the recording with an error: a corpus must show what it claims to show.

The runs use the provider stand-in (``baton_temporal.testing.StandIn``), no ledger
except in ``ledger_down`` (a real PostgreSQL that is stopped while the step runs).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEXT = (
    "Quarterly report.\n\nRevenue grew 12% on the year, driven by the new product line.\n\n"
    "Costs were flat; the outlook is cautious."
)
MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"]
SLOW_MODEL_S = 1.0
# A straggler this slow is cancelled long before it would answer.
STRAGGLER_S = 30.0
UNREGISTERED_WAIT_S = 3


@dataclass
class Ctx:
    """What a scenario needs: the client, its own task queue, the stand-in, the library."""

    client: Any
    task_queue: str
    standin: Any
    baton: Any
    steps: Any
    workflows: Any
    plugin_options: dict[str, Any] = field(default_factory=dict)
    # Runs while the worker is up, after the start (e.g. to bring the ledger back).
    during: Callable[[Any], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    expected: str  # "completed" or "failed"
    start: Callable[[Ctx], Awaitable[Any]]
    prepare: Callable[[Ctx], Awaitable[Callable[[], Awaitable[None]] | None]] | None = None
    run: str = "first"
    """Which run's history to keep when the flow continued as new: "first" or "last"."""
    before: str | None = None
    """The outcome under code from before the change the scenario covers, when it differs
    (recorded with ``--code`` into a release directory other than ``current``)."""


def _retry(attempts: int) -> Any:
    from temporalio.common import RetryPolicy

    return RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=1.0,
        maximum_attempts=attempts,
    )


def _flow(ctx: Ctx, name: str, **kw: Any) -> Any:
    return ctx.baton.new(workflow_name=name, workflow_id=f"history-{name}", **kw)


async def _seed_analysis(ctx: Ctx) -> Any:
    flow = ctx.steps.seed.analysis_flow(TEXT)
    return await flow.start(ctx.client, task_queue=ctx.task_queue, id="history-seed_analysis")


def _quality(ctx: Ctx, name: str, quorum: int | None) -> Awaitable[Any]:
    flow = ctx.steps.seed.quality_flow(TEXT, quorum=quorum, workflow_id=f"history-{name}")
    return flow.start(ctx.client, task_queue=ctx.task_queue)


async def _slow_gpt(ctx: Ctx) -> None:
    ctx.standin.set_latency(SLOW_MODEL_S, "gpt-4o")


async def _failing_gpt(ctx: Ctx) -> None:
    from baton_temporal.testing.standin import Fault

    ctx.standin.script("gpt-4o", [Fault.status(400)])


async def _cascade(ctx: Ctx) -> Any:
    s = ctx.steps
    flow = (
        _flow(ctx, "cascade")
        .add("a", s.echo, {"value": 1})
        .add("b", s.broken, deps=["a"])
        .add("c", s.echo, deps=["b"])
        .add("d", s.echo, deps=["c"])
        .add("e", s.echo, deps=["a"])
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _ignore_failed(ctx: Ctx) -> Any:
    s = ctx.steps
    flow = (
        _flow(ctx, "ignore_failed")
        .add("a", s.echo, {"value": 1})
        .add("b", s.broken, deps=["a"])
        .add("c", s.echo, deps=["a", "b"], ignore_failed=True)
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _local_steps(ctx: Ctx) -> Any:
    s = ctx.steps
    flow = (
        _flow(ctx, "local_steps")
        .add("a", s.echo, {"value": 1}, local=True)
        .add("b", s.echo, {"value": 2}, deps=["a"], local=True)
        .add("c", s.echo, {"value": 3}, deps=["a"])
        .add("d", s.flaky, {"succeed_on": 2}, deps=["b", "c"], local=True, retry_policy=_retry(3))
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _retry_then_succeed(ctx: Ctx) -> Any:
    flow = _flow(ctx, "retry_then_succeed").add(
        "flaky", ctx.steps.flaky, {"succeed_on": 3}, retry_policy=_retry(5)
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _fail_for_good(ctx: Ctx) -> Any:
    flow = (
        _flow(ctx, "fail_for_good")
        .add("first", ctx.steps.echo, {"value": 1})
        .add("flaky", ctx.steps.flaky, {"succeed_on": 99}, deps=["first"], retry_policy=_retry(3))
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _max_concurrency(ctx: Ctx) -> Any:
    flow = _flow(ctx, "max_concurrency", max_concurrency=2)
    for i in range(6):
        flow = flow.add(f"n{i}", ctx.steps.echo, {"value": i})
    flow = flow.add("join", ctx.steps.echo, deps=[f"n{i}" for i in range(6)])
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


def _continued(name: str) -> Callable[[Ctx], Awaitable[Any]]:
    async def start(ctx: Ctx) -> Any:
        # A low history threshold: the flow continues as new several times, carrying
        # every step's state and result.
        flow = _flow(ctx, name, max_concurrency=1, max_history_events=20)
        for i in range(5):
            flow = flow.add(f"n{i}", ctx.steps.echo, {"value": i})
        flow = flow.add("join", ctx.steps.echo, deps=[f"n{i}" for i in range(5)])
        return await flow.start(ctx.client, task_queue=ctx.task_queue)

    return start


def _handwritten(name: str, quorum: int | None) -> Callable[[Ctx], Awaitable[Any]]:
    async def start(ctx: Ctx) -> Any:
        params = {"text": TEXT, "models": MODELS, "quorum": quorum}
        return await ctx.client.start_workflow(
            "histories.HandwrittenQuality",
            params,
            id=f"history-{name}",
            task_queue=ctx.task_queue,
        )

    return start


async def _large_payload(ctx: Ctx) -> Any:
    s = ctx.steps
    flow = (
        _flow(ctx, "large_payload")
        .add("big", s.big, {"size": 300_000})
        .add("read_1", s.measure, deps=["big"])
        .add("read_2", s.measure, deps=["big"])
        .add("join", s.echo, deps=["read_1", "read_2"])
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _ledger_down_prepare(ctx: Ctx) -> Callable[[], Awaitable[None]]:
    """A real PostgreSQL ledger, migrated, then stopped: the step's usage cannot be
    written and goes through the workflow's record-usage activity, which succeeds once
    the server is back."""
    from baton_temporal.ledger import LedgerStore
    from baton_temporal.testing.postgres import start_postgres

    server = await asyncio.to_thread(start_postgres)
    store = LedgerStore.from_url(server.url, connect_timeout=1)
    await store.migrate()
    await asyncio.to_thread(server.stop)
    ctx.plugin_options["ledger"] = store

    async def during(handle: Any) -> None:
        # Bring the ledger back once the workflow has scheduled the record-usage activity.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            history = await handle.fetch_history()
            if any(
                e.activity_task_scheduled_event_attributes.activity_type.name
                == "baton.record_usage"
                for e in history.events
            ):
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError("ledger_down: the record-usage activity was never scheduled")
        await asyncio.to_thread(server.start)

    async def cleanup() -> None:
        await store.close()
        await asyncio.to_thread(server.close)

    ctx.during = during
    return cleanup


async def _ledger_down(ctx: Ctx) -> Any:
    s = ctx.steps
    flow = (
        _flow(ctx, "ledger_down")
        .add("ask", s.ask, {"model": "gpt-4o", "question": "Is the ledger up?"})
        .add("after", s.echo, deps=["ask"])
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _very_slow_gpt(ctx: Ctx) -> None:
    ctx.standin.set_latency(STRAGGLER_S, "gpt-4o")


async def _quorum_straggler_needed(ctx: Ctx) -> Any:
    # x3 is a straggler of q (quorum 2 of 3), but "after" needs it: it is not cancelled.
    s = ctx.steps
    flow = (
        _flow(ctx, "quorum_straggler_needed")
        .add("x1", s.echo, {"value": 1})
        .add("x2", s.echo, {"value": 2})
        .add("x3", s.nap, {"seconds": 1.5})
        .add("after", s.echo, deps=["x3"])
        .add("q", s.echo, deps=["x1", "x2", "x3"], quorum=2)
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _quorum_one_slot(ctx: Ctx) -> Any:
    # max_concurrency=1: the slow x3 waits for the only slot; once x1 and x2 completed,
    # q's quorum is met and x3 is cancelled before it ever starts.
    s = ctx.steps
    flow = (
        _flow(ctx, "quorum_one_slot", max_concurrency=1)
        .add("x1", s.echo, {"value": 1})
        .add("x2", s.echo, {"value": 2})
        .add("x3", s.nap, {"seconds": 30})
        .add("q", s.echo, deps=["x1", "x2", "x3"], quorum=2)
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _unregistered_prepare(ctx: Ctx) -> None:
    ctx.plugin_options["unregistered_step_wait"] = UNREGISTERED_WAIT_S


async def _unregistered_step(ctx: Ctx) -> Any:
    flow = (
        _flow(ctx, "unregistered_step")
        .add("first", ctx.steps.echo, {"value": 1})
        .add("missing", "histories_step_no_worker_has", deps=["first"])
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _bool_numbers(ctx: Ctx) -> Any:
    # Started as `temporal workflow start --input` would: the flow JSON as written, with
    # JSON booleans where numbers belong (read as 1 before BOOL_NUMBERS_REFUSED).
    data = _flow(ctx, "bool_numbers").add("first", ctx.steps.echo, {"value": 1}).to_dict()
    data["steps"][0]["options"] = {"heartbeat_timeout": True, "retry": {"maximum_attempts": True}}
    return await ctx.client.start_workflow(
        "baton.Flow", data, id=data["workflow_id"], task_queue=ctx.task_queue
    )


def _bool_numbers_continued(name: str) -> Callable[[Ctx], Awaitable[Any]]:
    async def start(ctx: Ctx) -> Any:
        # The same JSON booleans in a flow that continues as new (max_history_events=20):
        # each continuation reads its carried flow as the first run did.
        flow = _flow(ctx, name, max_concurrency=1, max_history_events=20)
        for i in range(5):
            flow = flow.add(f"n{i}", ctx.steps.echo, {"value": i})
        data = flow.to_dict()
        for s in data["steps"]:
            s["options"] = {"heartbeat_timeout": True, "retry": {"maximum_attempts": True}}
        return await ctx.client.start_workflow(
            "baton.Flow", data, id=data["workflow_id"], task_queue=ctx.task_queue
        )

    return start


async def _batch_fan_out(ctx: Ctx) -> Any:
    seed, mm = ctx.steps.seed, importlib.import_module("baton_temporal.multi_model")
    # A request that errors at the provider: its branch fails, quorum 1 absorbs it.
    ctx.standin.batch.fail_request("assess_gpt_4o")
    fast = mm.BatchOptions(
        poll_interval=timedelta(milliseconds=200), max_poll_interval=timedelta(seconds=1)
    )
    flow = (
        _flow(ctx, "batch_fan_out")
        .add("parse", seed.parse_doc, {"text": TEXT, "doc_id": "doc-1"})
        .pipe(
            mm.fan_out,
            "assess",
            seed.assess,
            models=["claude-sonnet-4-20250514", "gpt-4o"],
            args={"doc_id": "doc-1"},
            deps=["parse"],
            synthesize_with=seed.synthesize_assessments,
            quorum=1,
            cancel_stragglers=False,
            batch=fast,
        )
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


async def _budget_stop(ctx: Ctx) -> Any:
    seed, mm = ctx.steps.seed, importlib.import_module("baton_temporal.multi_model")
    # A cap below any call's worst case: the first call asks the flow (an update) and is
    # refused; the flow stops scheduling and fails with BudgetExceeded.
    flow = (
        _flow(ctx, "budget_stop", budget_usd="0.000001")
        .add("parse", seed.parse_doc, {"text": TEXT, "doc_id": "doc-1"})
        .pipe(
            mm.fan_out,
            "assess",
            seed.assess,
            models=["claude-sonnet-4-20250514", "gpt-4o"],
            args={"doc_id": "doc-1"},
            deps=["parse"],
            synthesize_with=seed.synthesize_assessments,
        )
    )
    return await flow.start(ctx.client, task_queue=ctx.task_queue)


def _prep(fn: Callable[[Ctx], Awaitable[None]]) -> Callable[[Ctx], Awaitable[None]]:
    async def prepare(ctx: Ctx) -> None:
        await fn(ctx)

    return prepare


SCENARIOS = [
    Scenario(
        "seed_analysis",
        "seed analysis_flow: parse -> assess -> report, per-step models",
        "completed",
        _seed_analysis,
    ),
    Scenario(
        "seed_quality",
        "seed quality_flow: parse -> 3-model fan-out -> synthesis -> report",
        "completed",
        lambda c: _quality(c, "seed_quality", None),
    ),
    Scenario(
        "quorum_slow_model",
        f"quality_flow quorum=2, gpt-4o answers {SLOW_MODEL_S}s late",
        "completed",
        lambda c: _quality(c, "quorum_slow_model", 2),
        _prep(_slow_gpt),
    ),
    Scenario(
        "quorum_failed_model",
        "quality_flow quorum=2, gpt-4o fails for good (HTTP 400)",
        "completed",
        lambda c: _quality(c, "quorum_failed_model", 2),
        _prep(_failing_gpt),
    ),
    Scenario(
        "cascade", "b fails for good: c and d (after it) are cancelled, e runs", "failed", _cascade
    ),
    Scenario(
        "ignore_failed", "b fails for good; c ignores it and runs", "completed", _ignore_failed
    ),
    Scenario(
        "local_steps", "local steps (one retried) around a regular one", "completed", _local_steps
    ),
    Scenario(
        "retry_then_succeed",
        "a step fails twice, succeeds on attempt 3",
        "completed",
        _retry_then_succeed,
    ),
    Scenario("fail_for_good", "a step fails on all 3 attempts", "failed", _fail_for_good),
    Scenario(
        "max_concurrency",
        "6 steps with max_concurrency=2, then a join",
        "completed",
        _max_concurrency,
    ),
    Scenario(
        "handwritten",
        "sandboxed workflow: run_step, run_fan_out, run_synthesis",
        "completed",
        _handwritten("handwritten", None),
    ),
    Scenario(
        "handwritten_quorum",
        f"the same, quorum=2, gpt-4o {SLOW_MODEL_S}s late",
        "completed",
        _handwritten("handwritten_quorum", 2),
        _prep(_slow_gpt),
    ),
    Scenario(
        "ledger_down",
        "an LLM step while PostgreSQL is down: usage via baton.record_usage",
        "completed",
        _ledger_down,
        _ledger_down_prepare,
    ),
    Scenario("large_payload", "a 300 KB result read by two steps", "completed", _large_payload),
    # Added with this release (early quorum, unregistered steps): not in 527f01c's corpus.
    Scenario(
        "quorum_stragglers_cancelled",
        f"quality_flow quorum=2, gpt-4o {STRAGGLER_S:.0f}s late: synthesis at 2, gpt-4o cancelled",
        "completed",
        lambda c: _quality(c, "quorum_stragglers_cancelled", 2),
        _prep(_very_slow_gpt),
    ),
    Scenario(
        "quorum_straggler_needed",
        "quorum 2 of 3 starts at 2; the third is needed by another step, so it runs on",
        "completed",
        _quorum_straggler_needed,
    ),
    Scenario(
        "quorum_one_slot",
        "max_concurrency=1, quorum 2 of 3: the third is cancelled before it starts",
        "completed",
        _quorum_one_slot,
    ),
    Scenario(
        "continue_as_new_first_run",
        "5 steps one at a time with max_history_events=20: the first run continues as new",
        "completed",
        _continued("continue_as_new_first_run"),
    ),
    Scenario(
        "continue_as_new_last_run",
        "the same flow's last run: it restores the carried states and results",
        "completed",
        _continued("continue_as_new_last_run"),
        run="last",
    ),
    Scenario(
        "unregistered_step",
        f"a step no worker registers: waits {UNREGISTERED_WAIT_S}s with backoff, then fails",
        "failed",
        _unregistered_step,
        _unregistered_prepare,
    ),
    Scenario(
        "batch_fan_out",
        "parse -> 2-model fan-out through the batch APIs (one request errors) -> synthesis",
        "completed",
        _batch_fan_out,
    ),
    Scenario(
        "bool_numbers",
        'a flow JSON with "heartbeat_timeout": true: refused (read as 1 s before)',
        "failed",
        _bool_numbers,
        before="completed",
    ),
    Scenario(
        "bool_numbers_continued_first",
        "those booleans in a flow continuing as new: refused (before: read as 1; first run)",
        "failed",
        _bool_numbers_continued("bool_numbers_continued_first"),
        before="completed",
    ),
    Scenario(
        "bool_numbers_continued_last",
        "that flow's last run (before): a continuation reads true as 1 as its first run did",
        "failed",
        _bool_numbers_continued("bool_numbers_continued_last"),
        run="last",
        before="completed",
    ),
    Scenario(
        "budget_stop",
        "parse -> 2-model fan-out under a cap below one call: refused, the flow stops",
        "failed",
        _budget_stop,
    ),
]


def _self_contained(baton: Any) -> dict[str, Any]:
    """No payload store: a history must hold all its payloads, or it replays only where
    the store it was recorded with is (releases before the store had none)."""
    import inspect

    params = inspect.signature(baton.BatonPlugin).parameters
    return {"payload_store": False} if "payload_store" in params else {}


def _commit(root: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "baton_temporal")
    return f"{sha}+dirty" if dirty else sha


async def record(release: str, only: set[str] | None, out_root: Path) -> Path:
    import temporalio
    from temporalio.client import WorkflowFailureError
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    import baton_temporal as baton
    from baton_temporal.testing import StandIn

    try:
        from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
    except ImportError:  # release 527f01c and before
        devserver = importlib.import_module("baton_temporal._devserver")
        DEV_SERVER_ARGS, temporal_cli_path = devserver.DEV_SERVER_ARGS, devserver.temporal_cli_path

    from . import steps, workflows

    code_root = Path(baton.__file__).resolve().parent.parent
    commit = _commit(code_root)
    out = out_root / release
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    entries: dict[str, dict[str, Any]] = {}
    if only and manifest_path.exists():
        entries = {e["scenario"]: e for e in json.loads(manifest_path.read_text())["histories"]}
    print(f"recording release {release} from {code_root} (commit {commit}) into {out}")

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    try:
        with StandIn() as standin:
            for sc in SCENARIOS:
                if only and sc.name not in only:
                    continue
                standin.reset()
                ctx = Ctx(env.client, f"histories-{sc.name}", standin, baton, steps, workflows)
                cleanup = await sc.prepare(ctx) if sc.prepare else None
                try:
                    plugin = baton.BatonPlugin(
                        steps=steps.STEPS,
                        workflows=[workflows.HandwrittenQuality],
                        llm=standin.config(),
                        **{"ledger": False, **_self_contained(baton), **ctx.plugin_options},
                    )
                    async with Worker(env.client, task_queue=ctx.task_queue, plugins=[plugin]):
                        handle = await sc.start(ctx)
                        if ctx.during:
                            await ctx.during(handle)
                        try:
                            await asyncio.wait_for(handle.result(), 120)
                            outcome = "completed"
                        except WorkflowFailureError:
                            outcome = "failed"
                    # The start handle follows the run chain to its last run; the first
                    # run is named explicitly.
                    kept = env.client.get_workflow_handle(
                        handle.id,
                        run_id=None if sc.run == "last" else handle.first_execution_run_id,
                    )
                    history = await kept.fetch_history()
                finally:
                    if cleanup:
                        await cleanup()
                expected = sc.expected if release == "current" else sc.before or sc.expected
                if outcome != expected:
                    raise SystemExit(
                        f"scenario {sc.name}: the run {outcome}, expected {expected}; "
                        "fix the scenario before recording it"
                    )
                text = history.to_json()
                (out / f"{sc.name}.json").write_text(text + "\n")
                start = history.events[0].workflow_execution_started_event_attributes
                entries[sc.name] = {
                    "scenario": sc.name,
                    "file": f"{sc.name}.json",
                    "description": sc.description,
                    "workflow_type": start.workflow_type.name,
                    "workflow_id": handle.id,
                    "expected_outcome": expected,
                    "events": len(history.events),
                    "bytes": len(text) + 1,
                }
                print(f"  {sc.name:<22} {outcome:<9} {len(history.events):>4} events")
    finally:
        await env.shutdown()

    manifest = {
        "release": release,
        "commit": commit,
        "temporalio": temporalio.__version__,
        "python": sys.version.split()[0],
        "histories": [entries[s.name] for s in SCENARIOS if s.name in entries],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _library_of(root: Path) -> str:
    """A directory holding only the library packages of ``root`` (as symlinks), so that
    ``tests`` (this corpus' steps and workflow, which workflow sandboxes re-import) still
    comes from this checkout."""
    import tempfile

    libdir = Path(tempfile.mkdtemp(prefix="baton-histories-"))
    for package in ("baton_temporal", "workers"):
        if (root / package).is_dir():
            (libdir / package).symlink_to(root / package)
    return str(libdir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", default="current", help="corpus directory name")
    parser.add_argument(
        "--code", type=Path, help="record with the baton_temporal of this checkout instead"
    )
    parser.add_argument("--only", help="comma-separated scenario names (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.code:
        root = args.code.resolve()
        if not (root / "baton_temporal" / "__init__.py").is_file():
            raise SystemExit(f"--code {root}: no baton_temporal package there")
        if "baton_temporal" in sys.modules:
            raise SystemExit("--code must be given before baton_temporal is imported")
        sys.path.insert(0, _library_of(root))
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {s.name for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    asyncio.run(record(args.release, only, args.out))


if __name__ == "__main__":
    main()
