"""Where a worker's memory goes: ``python -m benchmarks.rss_breakdown`` (``make rss-breakdown``).

Starts the stand-in, PostgreSQL and a dev server as :mod:`benchmarks.scale` does, then
each comparator's worker (``plain``, ``baton``, ``baton_noledger``) in turn and reports
its RSS when polling (*ready*), after the warm-up flows (*before*, as bench-scale names
it), the peak while ``--flows`` flows run with ``--latency`` s models, and the growth
per flow in flight. ``--trace``: the workers run under tracemalloc (slower, more RSS)
and the report names what grew, by package and by line, between *ready* and *before*
and between *before* and the middle of the run; gc object counts by type and the
modules imported are reported in every mode.

Example::

    python -m benchmarks.rss_breakdown --flows 200
    python -m benchmarks.rss_breakdown --flows 200 --trace --only baton
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from .infra import Proc, run_main
from .scale import COMPARATORS, RSSSampler, Talker, _status, run_flows, services

MIB = 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def one(
    env: WorkflowEnvironment,
    standin: Talker,
    comparator: str,
    *,
    flows: int,
    warmup: int,
    slots: int,
    latency: float,
    ledger_url: str | None,
    child_env: dict[str, str],
    log_dir: Path,
    trace: int,
    importtime: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    kind = "plain" if comparator == "plain" else "baton"
    queue = f"rss-{comparator}-{uuid.uuid4().hex[:6]}"
    address = env.client.service_client.config.target_host
    args = ["-m", "benchmarks.scale_worker", "--kind", kind, "--address", address]
    args += ["--task-queue", queue, "--slots", str(slots)]
    if comparator == "baton" and ledger_url:
        args += ["--ledger", ledger_url]
    worker_env = dict(child_env)
    if trace:
        worker_env["PYTHONTRACEMALLOC"] = str(trace)
    if importtime:
        worker_env["PYTHONPROFILEIMPORTTIME"] = "1"  # the import tree, in the worker's log
    worker_env.update(extra_env or {})
    proc, _ = await Proc.start(f"rss-worker-{comparator}", args, env=worker_env, log_dir=log_dir)
    worker = Talker(proc)
    out: dict[str, Any] = {"comparator": comparator, "flows": flows, "trace": bool(trace)}
    try:
        out["ready"] = await worker.ask("mem")
        await worker.ask("mark")
        await standin.ask("latency 0")
        await run_flows(env, kind, queue, warmup)
        out["before"] = await worker.ask("mem")
        out["ready_to_before"] = await worker.ask("diff", timeout=600)
        out["modules_before"] = (await worker.ask("modules"))["modules"]
        if trace:
            out["traced_before"] = await worker.ask("total", timeout=600)
        await worker.ask("mark", timeout=600)
        await standin.ask("latency " + str(latency))
        sampler = RSSSampler(proc.pid)
        sampler.start()
        run = asyncio.ensure_future(run_flows(env, kind, queue, flows))
        # The middle of the run: every flow started, about half the calls answered.
        await asyncio.sleep(max(2.0, latency * 5 * flows / slots / 2))
        out["middle"] = await worker.ask("mem")
        out["before_to_middle"] = await worker.ask("diff", timeout=600)
        await run
        out["peak_kib"] = await sampler.stop()
        out["after"] = await worker.ask("mem")
        out["hwm_kib"] = _status(proc.pid).get("VmHWM", 0)
    finally:
        await worker.close()
    before = out["before"]["rss_kib"]
    out["summary_mib"] = {
        "ready": round(out["ready"]["rss_kib"] / MIB, 1),
        "before": round(before / MIB, 1),
        "middle": round(out["middle"]["rss_kib"] / MIB, 1),
        "peak": round(out["peak_kib"] / MIB, 1),
        "after": round(out["after"]["rss_kib"] / MIB, 1),
        "per_flow_kib": round((out["peak_kib"] - before) / flows, 1),
    }
    log(f"{comparator}: {json.dumps(out['summary_mib'])}")
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--only", default=",".join(COMPARATORS))
    parser.add_argument(
        "--trace", type=int, default=0, help="tracemalloc frames per block (0: off)"
    )
    parser.add_argument(
        "--importtime", action="store_true", help="-X importtime in the workers' logs"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the workers (e.g. MALLOC_ARENA_MAX=2); repeatable",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args()
    comparators = [c for c in args.only.split(",") if c]
    log_dir = Path(tempfile.mkdtemp(prefix="rss-breakdown-"))
    log(f"rss-breakdown: {args.flows} flows, {args.latency} s models; logs {log_dir}")
    results = []
    async with services(
        log_dir, ledger_database="rss_breakdown" if "baton" in comparators else None
    ) as running:
        for comparator in comparators:
            results.append(
                await one(
                    running.env,
                    running.standin,
                    comparator,
                    flows=args.flows,
                    warmup=args.warmup,
                    slots=args.slots,
                    latency=args.latency,
                    ledger_url=running.ledger_url,
                    child_env=running.child_env,
                    log_dir=log_dir,
                    trace=args.trace,
                    importtime=args.importtime,
                    extra_env=dict(e.split("=", 1) for e in args.worker_env),
                )
            )
    report = json.dumps(results, indent=1)
    if args.out is not None:
        args.out.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    run_main(main)
