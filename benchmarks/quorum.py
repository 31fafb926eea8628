"""Quorum against all-must-finish, on the seed fan-out with one model's latency tail.

The seed pipeline (parse -> assess on three models -> synthesis -> report), every LLM
call through the real SDK clients to the local stand-in at 200 ms; in a seeded ~15% of
the runs one model (gpt-4o) takes 5 s instead. Each configuration runs the same N flows
one after another, with the same slow runs:

- ``flow, all``: the declared flow without a quorum (synthesis waits for every model;
  today's behaviour, what ``asyncio.gather`` gives);
- ``flow, quorum=2``: synthesis starts at 2 of 3; the straggler is cancelled;
- ``flow, quorum=2, finish``: the same, but the straggler is left to finish
  (``cancel_stragglers=False``): the run ends when it does;
- ``hand-written, gather``: ``run_fan_out`` without quorum (``asyncio.gather``);
- ``hand-written, quorum=2``: ``run_fan_out(quorum=2)``, stragglers cancelled.

Run: ``make bench-quorum`` or ``.venv/bin/python -m benchmarks.quorum [--runs 40]``.
Writes ``benchmarks/results/quorum.md`` and ``quorum.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.cli._devserver import DEV_SERVER_ARGS, temporal_cli_path
from baton_temporal.examples import seed
from baton_temporal.testing import Fault, StandIn

RESULTS = Path(__file__).parent / "results"
SLOW_MODEL = "gpt-4o"
TEXT = "Revenue grew by a tenth.\n\nCosts fell.\n\nThe outlook is stable."


@workflow.defn(name="bench.QuorumSeed", sandboxed=False)
class HandwrittenQuorumSeed:
    """The seed pipeline by hand: run_fan_out (gather, or quorum=k) then synthesis."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        parsed = await baton.run_step(seed.parse_doc, {"text": TEXT}, name="parse")
        by_model = await multi_model.run_fan_out(
            seed.assess,
            base="assess",
            models=seed.SEED_MODELS,
            results={"parse": parsed},
            quorum=params.get("quorum"),
        )
        synthesis = await multi_model.run_synthesis(
            seed.synthesize_assessments,
            by_model,
            base="assess",
            model="claude-opus-4-20250514",
            all_models=seed.SEED_MODELS,
        )
        return await baton.run_step(
            seed.report, name="report", results={"assess_synthesis": synthesis}
        )


def declared(quorum: int | None, finish: bool = False) -> baton.Flow:
    flow = seed.quality_flow(TEXT, quorum=quorum)
    if finish:
        flow = baton.Flow(
            flow.spec.model_copy(
                update={
                    "steps": tuple(
                        s.model_copy(update={"cancel_stragglers": False})
                        if s.quorum is not None
                        else s
                        for s in flow.spec.steps
                    )
                }
            )
        )
    return flow


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        # Nearest rank: the smallest sample with at least p% of samples at or below it.
        rank = max(1, -(-len(ordered) * p // 100))
        return ordered[int(rank) - 1]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": pct(95),
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
    }


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="flows per configuration")
    parser.add_argument("--latency", type=float, default=0.2, help="model latency, s")
    parser.add_argument("--tail", type=float, default=5.0, help="the slow model's tail, s")
    parser.add_argument("--tail-share", type=float, default=0.15, help="share of slow runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    slow_runs = [rng.random() < args.tail_share for _ in range(args.runs)]
    configs: list[tuple[str, Any]] = [
        ("flow, all (gather)", lambda: ("flow", declared(None))),
        ("flow, quorum=2", lambda: ("flow", declared(2))),
        ("flow, quorum=2, finish", lambda: ("flow", declared(2, finish=True))),
        ("hand-written, gather", lambda: ("hand", {"quorum": None})),
        ("hand-written, quorum=2", lambda: ("hand", {"quorum": 2})),
    ]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with env, StandIn(latency=args.latency) as standin:
            client = env.client
            queue = f"bench-quorum-{uuid.uuid4().hex[:6]}"
            plugin = baton.BatonPlugin(
                steps=seed.STEPS,
                workflows=[HandwrittenQuorumSeed],
                ledger=f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}",
                llm=standin.config(),
            )
            async with Worker(client, task_queue=queue, plugins=[plugin]):
                # Warm-up: imports, connections, the ledger's first write.
                await declared(None).run(client, task_queue=queue)
                for name, make in configs:
                    samples: list[float] = []
                    tails: list[float] = []
                    for slow in slow_runs:
                        standin.reset()
                        if slow:
                            standin.script(SLOW_MODEL, [Fault.slow(args.tail - args.latency)])
                        kind, what = make()
                        began = time.perf_counter()
                        if kind == "flow":
                            await what.run(client, task_queue=queue)
                        else:
                            await client.execute_workflow(
                                HandwrittenQuorumSeed.run,
                                what,
                                id=f"bench-q-{uuid.uuid4().hex[:8]}",
                                task_queue=queue,
                            )
                        took = (time.perf_counter() - began) * 1000
                        samples.append(took)
                        if slow:
                            tails.append(took)
                    results[name] = {
                        "all": summary(samples),
                        "slow_runs": summary(tails) if tails else None,
                        "samples_ms": samples,
                    }
                    print(
                        f"{name:28s} p50 {results[name]['all']['p50']:7.0f} ms   "
                        f"p95 {results[name]['all']['p95']:7.0f} ms",
                        flush=True,
                    )
    report = {
        "runs": args.runs,
        "slow_runs": sum(slow_runs),
        "latency_s": args.latency,
        "tail_s": args.tail,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quorum.json").write_text(json.dumps(report, indent=2))
    (args.out / "quorum.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Quorum against all-must-finish",
        "",
        f"{report['runs']} sequential runs of the seed fan-out per configuration; models at "
        f"{report['latency_s'] * 1000:.0f} ms, {SLOW_MODEL} at {report['tail_s']:.0f} s in "
        f"{report['slow_runs']} of them (the same runs for every configuration). "
        "End-to-end ms, start to result.",
        "",
        "| configuration | p50 | p95 | mean | max | slow runs: p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in report["results"].items():
        a, s = r["all"], r["slow_runs"]
        lines.append(
            f"| {name} | {a['p50']:.0f} | {a['p95']:.0f} | {a['mean']:.0f} | {a['max']:.0f} | "
            + (f"{s['p50']:.0f} |" if s else "- |")
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    asyncio.run(main())
