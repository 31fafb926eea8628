"""Concurrency at real scale: ``python -m benchmarks.scale`` (``make bench-scale``).

N seed pipelines in flight at once (parse -> assess on 3 models -> synthesis -> report,
5 LLM calls, the assessment as structured output), every model call taking ``--latency``
seconds at the provider stand-in (its own process), all calls through the real
Anthropic/OpenAI SDK clients. Comparators, one worker process each, run one after the
other, each run on a dev server of its own (started as ``baton dev`` starts it):

- ``plain``: plain temporalio, ``@workflow.defn`` + ``@activity.defn`` making the same
  SDK calls (:mod:`benchmarks.scale_plain`), one client per SDK per process;
- ``baton``: ``seed.quality_flow`` run by ``baton.Flow`` with ``BatonPlugin`` and a
  PostgreSQL ledger (``baton_noledger``: ``ledger=False``).

Every worker gets the same ``--slots`` (``max_concurrent_activities``). Measured: flows/s
from the first start to the last result, the worker's peak RSS (``/proc/PID/status``
sampled every 0.2 s, and ``VmHWM``), CPU seconds of worker and server, the CPU other
processes used meanwhile (the machine is shared), SDK clients the worker built, and
connections the stand-in accepted. Results: ``benchmarks/results/scale.{json,md}``.

Example::

    python -m benchmarks.scale --flows 200            # a reduced run
    python -m benchmarks.scale --flows 1000           # the target: 1,000 in flight, 1 s models
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.examples import seed
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing.postgres import start_postgres

from .infra import (
    REPO,
    ForeignCPU,
    Proc,
    child_environment,
    cpu_by_process,
    own_cpu,
    run_main,
)

RESULTS = REPO / "benchmarks" / "results"
DOCUMENT = (REPO / "baton_temporal" / "data" / "sample_document.md").read_text()
SYNTH_MODEL = "claude-opus-4-20250514"
COMPARATORS = ("plain", "baton", "baton_noledger")


class Talker:
    """Commands to a child process, with its stdout drained all the time.

    The SDK core logs to stdout; a pipe nobody reads fills up and then blocks the child
    mid-run. Lines that are JSON objects are answers; the rest go to the child's log.
    """

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.other_lines = 0
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        stdout = self.proc.proc.stdout
        assert stdout is not None
        with self.proc.log.open("ab") as log_file:
            while line := await stdout.readline():
                answer = None
                with contextlib.suppress(ValueError):
                    answer = json.loads(line)
                if isinstance(answer, dict):
                    await self.answers.put(answer)
                else:
                    self.other_lines += 1
                    log_file.write(line)

    async def ask(self, command: str, timeout: float = 120) -> dict[str, Any]:
        stdin = self.proc.proc.stdin
        assert stdin is not None
        stdin.write((command + "\n").encode())
        await stdin.drain()
        return await asyncio.wait_for(self.answers.get(), timeout)

    async def close(self) -> None:
        await self.proc.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class RSSSampler:
    """The peak resident set of one process, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, _status(self.pid).get("VmRSS", 0))
            await asyncio.sleep(0.2)

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak_kib = max(self.peak_kib, _status(self.pid).get("VmRSS", 0))
        return self.peak_kib


async def start_one(env: WorkflowEnvironment, kind: str, queue: str) -> Any:
    client = env.client
    workflow_id = f"scale-{kind}-{uuid.uuid4().hex[:10]}"
    if kind == "plain":
        req = {
            "text": DOCUMENT,
            "doc_id": "doc-123",
            "models": list(seed.SEED_MODELS),
            "synthesize_model": SYNTH_MODEL,
        }
        return await client.start_workflow("bench.PlainSeed", req, id=workflow_id, task_queue=queue)
    flow = seed.quality_flow(DOCUMENT, workflow_id=workflow_id)
    return await flow.start(client, task_queue=queue)


async def run_flows(env: WorkflowEnvironment, kind: str, queue: str, n: int) -> float:
    """Start n flows at once (starts 50 at a time), wait for all; seconds elapsed."""
    gate = asyncio.Semaphore(50)

    async def one() -> Any:
        async with gate:
            handle = await start_one(env, kind, queue)
        return await handle.result()

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - started
    if len(results) != n:
        raise RuntimeError(f"{kind}: {len(results)} of {n} flows finished")
    return elapsed


async def measure(
    env: WorkflowEnvironment,
    standin: Talker,
    comparator: str,
    *,
    flows: int,
    warmup: int,
    slots: int,
    ledger_url: str | None,
    child_env: dict[str, str],
    log_dir: Path,
    server_pid: int | None,
) -> dict[str, Any]:
    kind = "plain" if comparator == "plain" else "baton"
    queue = f"scale-{comparator}-{uuid.uuid4().hex[:6]}"
    address = env.client.service_client.config.target_host
    args = ["-m", "benchmarks.scale_worker", "--kind", kind, "--address", address]
    args += ["--task-queue", queue, "--slots", str(slots)]
    if comparator == "baton" and ledger_url:
        args += ["--ledger", ledger_url]
    proc, _ = await Proc.start(f"scale-worker-{comparator}", args, env=child_env, log_dir=log_dir)
    worker = Talker(proc)
    try:
        await standin.ask("latency 0")
        await run_flows(env, kind, queue, warmup)  # imports, first connections, caches
        await standin.ask("reset")
        await standin.ask("latency " + child_env["BENCH_LATENCY"])
        rss_before = _status(proc.pid).get("VmRSS", 0)
        sampler = RSSSampler(proc.pid)
        foreign = ForeignCPU()
        cpu_before = cpu_by_process()
        conns_before = (await standin.ask("connections"))["connections"]
        sampler.start()
        foreign.start()
        load_before = os.getloadavg()
        elapsed = await run_flows(env, kind, queue, flows)
        load_after = os.getloadavg()
        other_cpu = await foreign.stop()
        peak = await sampler.stop()
        cpu_after = cpu_by_process()
        conns = (await standin.ask("connections"))["connections"] - conns_before
        billed = (await standin.ask("count"))["billed"]
        built = (await worker.ask("clients"))["clients"]
        hwm = _status(proc.pid).get("VmHWM", 0)

        def used(pid: int | None) -> float:
            if pid is None or pid not in cpu_after:
                return 0.0
            return cpu_after[pid][1] - cpu_before.get(pid, ("", 0.0))[1]

        # PostgreSQL's backends (the ledger's connections) and the stand-in and this driver
        # (starting flows, awaiting results) share the 2 CPUs: the whole cost of a flow.
        postgres = own_cpu(cpu_before, cpu_after, "postgres")

        result = {
            "comparator": comparator,
            "flows": flows,
            "seconds": round(elapsed, 2),
            "flows_per_s": round(flows / elapsed, 2),
            "llm_calls_billed": billed,
            "worker_rss_before_mib": round(rss_before / 1024, 1),
            "worker_rss_peak_mib": round(peak / 1024, 1),
            "worker_rss_hwm_mib": round(hwm / 1024, 1),
            "worker_cpu_s": round(used(proc.pid), 1),
            "server_cpu_s": round(used(server_pid), 1),
            "postgres_cpu_s": round(postgres, 1),
            "standin_cpu_s": round(used(standin.proc.proc.pid), 1),
            "driver_cpu_s": round(used(os.getpid()), 1),
            "other_processes_cpu_s": round(other_cpu, 1),
            "load_avg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "sdk_clients_built": built,
            "connections_opened": conns,
            "worker_log_lines": worker.other_lines,
        }
        log(f"  {comparator:15} {json.dumps(result)}")
        return result
    finally:
        await worker.close()


def _server_pid(port: str) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
            if b"start-dev" in parts and port.encode() in parts:
                return int(entry)
    return None


@dataclass
class Backing:
    """What every benchmark run needs besides a dev server: the stand-in, the workers'
    environment and, for baton with a ledger, a migrated PostgreSQL database."""

    standin: Talker
    child_env: dict[str, str]
    ledger_url: str | None


@dataclass
class Services(Backing):
    """:class:`Backing` and a dev server."""

    env: WorkflowEnvironment


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server started as ``baton dev`` starts it, stopped on the way out."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=list(DEV_SERVER_ARGS),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def backing(
    log_dir: Path, *, ledger_database: str | None, worker_env: dict[str, str] | None = None
) -> AsyncIterator[Backing]:
    """Start the stand-in (its own process) and PostgreSQL with a migrated ledger database
    (when ``ledger_database`` names one); stop them on the way out."""
    standin_proc, hello = await Proc.start(
        "standin", ["-m", "benchmarks.standin_proc"], env=child_environment({}), log_dir=log_dir
    )
    standin = Talker(standin_proc)
    child_env = child_environment({**hello["env"], **(worker_env or {})})
    pg = None
    try:
        ledger_url = None
        if ledger_database is not None:
            pg = await asyncio.to_thread(start_postgres, settings={"shared_buffers": "256MB"})
            ledger_url = pg.create_database(ledger_database)
            store = LedgerStore.from_url(ledger_url)
            await store.migrate()
            await store.close()
        yield Backing(standin, child_env, ledger_url)
    finally:
        if pg is not None:
            pg.close()
        await standin.close()


@contextlib.asynccontextmanager
async def services(
    log_dir: Path, *, ledger_database: str | None, worker_env: dict[str, str] | None = None
) -> AsyncIterator[Services]:
    """:func:`backing` and one dev server for all the runs."""
    async with (
        backing(log_dir, ledger_database=ledger_database, worker_env=worker_env) as b,
        dev_server() as env,
    ):
        yield Services(b.standin, b.child_env, b.ledger_url, env)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=1000, help="flows in flight (default 1000)")
    parser.add_argument("--latency", type=float, default=1.0, help="model latency, seconds")
    parser.add_argument(
        "--slots",
        type=int,
        default=100,
        help="max_concurrent_activities (default: Temporal's, 100)",
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds; each runs every comparator once, in a rotated order (default 3)",
    )
    parser.add_argument("--only", default=",".join(COMPARATORS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    comparators = [c for c in args.only.split(",") if c]
    if args.rounds % len(comparators):
        # The machine's speed drifts during a round: only whole rotations give each
        # comparator every position equally often.
        log(
            f"warning: {args.rounds} rounds of {len(comparators)} comparators is not a whole "
            "number of rotations; the comparators that run first more often are favoured"
        )
    log_dir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    log(
        f"bench-scale: {args.flows} flows, {args.latency} s models, {args.slots} slots; "
        f"logs {log_dir}"
    )

    results: list[dict[str, Any]] = []
    async with backing(
        log_dir,
        ledger_database="bench_scale" if "baton" in comparators else None,
        worker_env={"BENCH_LATENCY": str(args.latency)},
    ) as running:
        # Runs of one comparator differ by 10-15% on this shared machine: every round runs
        # each comparator once, the order rotated, and the summary takes medians. Each run
        # gets a dev server of its own: one in-memory server keeps every finished flow, and
        # sharing it made each run slower than the one before (server CPU per flow grew
        # 81 -> 98 -> 121 ms over one round's three runs).
        for round_no in range(args.rounds):
            shift = round_no % len(comparators)
            for comparator in comparators[shift:] + comparators[:shift]:
                async with dev_server() as env:
                    address = env.client.service_client.config.target_host
                    result = await measure(
                        env,
                        running.standin,
                        comparator,
                        flows=args.flows,
                        warmup=args.warmup,
                        slots=args.slots,
                        ledger_url=running.ledger_url,
                        child_env=running.child_env,
                        log_dir=log_dir,
                        server_pid=_server_pid(address.rsplit(":", 1)[-1]),
                    )
                results.append(result | {"round": round_no + 1})

    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args) | {"out": str(args.out)},
        "results": results,
        "summary": summarize(results, calls_per_flow=CALLS_PER_FLOW),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"scale-{args.flows}-slots{args.slots}"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(_markdown(report))
    print(_markdown(report))


# LLM calls of one seed flow: three assessments, the synthesis, the report.
CALLS_PER_FLOW = 5


def summarize(results: list[dict[str, Any]], *, calls_per_flow: int) -> list[dict[str, Any]]:
    """Per comparator: medians over rounds, and the median of the per-round ratios to
    plain (each round's comparators ran back to back, so a round's ratio shares its noise).
    ``extra_billed_calls``: calls billed beyond one per LLM call of the flows, i.e. attempts
    run again (a timed-out heartbeat), summed over rounds.
    """
    plain_by_round = {r["round"]: r for r in results if r["comparator"] == "plain"}
    summary = []
    for name in dict.fromkeys(r["comparator"] for r in results):
        runs = [r for r in results if r["comparator"] == name]
        row: dict[str, Any] = {
            "comparator": name,
            "rounds": len(runs),
            "flows_per_s": round(statistics.median(r["flows_per_s"] for r in runs), 2),
            "flows_per_s_each": [r["flows_per_s"] for r in runs],
            "worker_rss_peak_mib": round(
                statistics.median(r["worker_rss_peak_mib"] for r in runs), 2
            ),
            "worker_rss_peak_each": [r["worker_rss_peak_mib"] for r in runs],
            "worker_rss_before_mib": round(
                statistics.median(r["worker_rss_before_mib"] for r in runs), 2
            ),
            "worker_cpu_ms_per_flow": round(
                statistics.median(1000 * r["worker_cpu_s"] / r["flows"] for r in runs), 1
            ),
            "server_cpu_ms_per_flow": round(
                statistics.median(1000 * r["server_cpu_s"] / r["flows"] for r in runs), 1
            ),
            "postgres_cpu_ms_per_flow": round(
                statistics.median(1000 * r.get("postgres_cpu_s", 0.0) / r["flows"] for r in runs),
                1,
            ),
            "total_cpu_ms_per_flow": round(
                statistics.median(1000 * _total_cpu(r) / r["flows"] for r in runs), 1
            ),
            "extra_billed_calls": sum(
                r["llm_calls_billed"] - calls_per_flow * r["flows"] for r in runs
            ),
        }
        paired = [(r, plain_by_round[r["round"]]) for r in runs if r["round"] in plain_by_round]
        if name != "plain" and paired:
            row["throughput_ratio_to_plain"] = round(
                statistics.median(r["flows_per_s"] / p["flows_per_s"] for r, p in paired), 3
            )
            row["rss_peak_ratio_to_plain"] = round(
                statistics.median(
                    r["worker_rss_peak_mib"] / p["worker_rss_peak_mib"] for r, p in paired
                ),
                3,
            )
        summary.append(row)
    return summary


def _total_cpu(run: dict[str, Any]) -> float:
    """CPU seconds of every process the run needs: worker, server, PostgreSQL, stand-in,
    and the driver that starts the flows."""
    keys = ("worker_cpu_s", "server_cpu_s", "postgres_cpu_s", "standin_cpu_s", "driver_cpu_s")
    return sum(run.get(k, 0.0) for k in keys)


def _markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# Scale: {s['flows']} seed flows in flight, {s['latency']} s models, "
        f"{s['slots']} activity slots",
        "",
        f"Run {report['when']} on {report['machine']['cpus']} CPUs (shared with other work; "
        "see the CPU other processes used).",
        "",
        f"Medians over {s['rounds']} rounds (each round runs every comparator once, the "
        "order rotated); *x plain* is the median of the per-round ratios.",
        "",
        "| comparator | flows/s (each round) | x plain | worker RSS peak MiB (each round) "
        "| x plain | RSS before MiB | worker CPU ms/flow | server CPU ms/flow "
        "| PostgreSQL CPU ms/flow | all processes' CPU ms/flow | extra billed calls |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["summary"]:
        each_rate = ", ".join(map(str, r["flows_per_s_each"]))
        each_rss = ", ".join(map(str, r["worker_rss_peak_each"]))
        lines.append(
            f"| {r['comparator']} | {r['flows_per_s']} ({each_rate})"
            f" | {r.get('throughput_ratio_to_plain', '-')}"
            f" | {r['worker_rss_peak_mib']} ({each_rss})"
            f" | {r.get('rss_peak_ratio_to_plain', '-')} | {r['worker_rss_before_mib']}"
            f" | {r['worker_cpu_ms_per_flow']} | {r['server_cpu_ms_per_flow']}"
            f" | {r['postgres_cpu_ms_per_flow']} | {r['total_cpu_ms_per_flow']}"
            f" | {r['extra_billed_calls']} |"
        )
    lines += [
        "",
        "Each run:",
        "",
        "| round | comparator | flows/s | worker RSS peak MiB | before MiB | worker CPU s "
        "| server CPU s | PostgreSQL CPU s | stand-in CPU s | driver CPU s | others' CPU s "
        "| load 1m before/after | billed calls | SDK clients | connections |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['round']} | {r['comparator']} | {r['flows_per_s']}"
            f" | {r['worker_rss_peak_mib']} | {r['worker_rss_before_mib']}"
            f" | {r['worker_cpu_s']} | {r['server_cpu_s']} | {r.get('postgres_cpu_s', '-')}"
            f" | {r.get('standin_cpu_s', '-')} | {r.get('driver_cpu_s', '-')}"
            f" | {r['other_processes_cpu_s']}"
            f" | {r['load_avg_before_after']} | {r['llm_calls_billed']}"
            f" | {r['sdk_clients_built']} | {r['connections_opened']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
