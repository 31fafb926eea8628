"""Render ``results.json`` as ``results.md``."""

from __future__ import annotations

from typing import Any

from baton_temporal.cli._devserver import DEV_SERVER_ARGS

LABELS = {
    "declarative": "1. declarative flow (baton.Flow, PG ledger)",
    "declarative_noledger": "1. declarative flow, ledger=False",
    "declarative_local": "1. declarative flow, parse as local activity (PG ledger)",
    "handwritten": "2. hand-written with baton helpers (PG ledger)",
    "plain": "3. plain temporalio (the peer)",
    "floor": "4. plain asyncio, no Temporal (the floor)",
}
MB = 1024 * 1024
LIMITS = {
    "payload": 2 * MB,
    "completion": 4 * MB,
    "events": 51_200,
    "history": 50 * MB,
    "pending": 2_000,
}


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def write_markdown(r: dict[str, Any]) -> str:
    meta = r["meta"]
    out: list[str] = []
    w = out.append
    w("# baton-temporal benchmark results\n")
    w(
        f"{meta['date']} · `{meta['command'].strip()}` · {meta['cpus']} CPUs · "
        f"Python {meta['python']} · "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f" · wall time {meta.get('wall_seconds', '?')} s\n"
    )
    if "foreign_cpu_seconds" in meta:
        w(
            "Machine noise: processes that are not this benchmark's used "
            f"{meta['foreign_cpu_seconds']} CPU-seconds during the run "
            f"({meta['foreign_cpu_share'] * 100:.0f}% of one core on average; 1-minute load "
            f"average {meta['load_average'][0]} at the start, {meta['load_average'][1]} at the "
            "end, on 2 cores).\n"
        )
    w(
        "Pipeline: the seed's `parse -> assess x3 models -> synthesis -> report` "
        f"({meta['levels']} DAG levels; parse makes no LLM call, the other three levels do). "
        "LLM calls go to the provider stand-in (its own process) through the real "
        "Anthropic/OpenAI SDK clients. One Temporal dev server, one worker process per "
        f"comparator, each taking at most {meta.get('activity_slots', 100)} activities at "
        "once. Latency: sequential runs, comparators interleaved round-robin, "
        f"{meta['runs']} runs each after 3 warm-up runs; client-side wall time from "
        "building/starting the workflow to having its result.\n"
    )

    targets = r.get("targets") or []
    if targets:
        w("## Targets\n")
        w("| target | met | value |")
        w("|---|---|---|")
        for t in targets:
            w(f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['value']} |")
        w("")

    for title, lat in _latency_sections(r):
        w(f"## {title}\n")
        for ms, phase in lat.items():
            _latency_table(w, ms, phase)

    if r.get("throughput"):
        w("## Throughput (0 ms models, one worker process, N flows started at once)\n")
        _throughput_table(w, r["throughput"])
    stock_tp = (r.get("stock_server") or {}).get("throughput")
    if stock_tp:
        w("Throughput on the dev server with its stock settings:\n")
        _throughput_table(w, stock_tp)

    if r.get("fanout"):
        _fanout(w, r["fanout"])
    if r.get("ledger"):
        _ledger(w, r["ledger"], r.get("latency"))
    return "\n".join(out) + "\n"


def _latency_sections(r: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    sections = []
    if r.get("latency"):
        server_args = r.get("meta", {}).get("server_args", DEV_SERVER_ARGS)
        args = " ".join(a for a in server_args if a != "--dynamic-config-value")
        how = "as `baton dev` starts it" if server_args == DEV_SERVER_ARGS else "started with"
        title = f"Latency of the pipeline (dev server {how}: `{args}`)"
        sections.append((title, r["latency"]))
    stock = r.get("stock_server")
    if stock and stock.get("latency"):
        sections.append(("Latency on the dev server with its stock settings", stock["latency"]))
    return sections


def _latency_table(w: Any, ms: str, phase: dict[str, Any]) -> None:
    c = phase["comparators"]
    plain, floor = c["plain"], c["floor"]
    levels = 4
    w(f"### Model latency {ms} ms\n")
    w(
        "| comparator | median ms | p95 ms | mean ms | / plain (median) | / plain (p95) "
        "| / floor (median) | overhead per level over floor |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in c.items():
        per_level = (s["median"] - floor["median"]) / levels
        w(
            f"| {LABELS.get(name, name)} | {_f(s['median'])} | {_f(s['p95'])} | {_f(s['mean'])} "
            f"| {s['median'] / plain['median']:.3f} | {s['p95'] / plain['p95']:.3f} "
            f"| {s['median'] / floor['median']:.2f} "
            f"| {'-' if name == 'floor' else _f(per_level) + ' ms'} |"
        )
    w("")
    b = phase.get("breakdown") or {}
    if b:
        w(
            "Where the server-side time of a run goes (medians of the last 10 runs, from "
            "history event timestamps): *WFT wait* = workflow tasks scheduled -> picked up "
            "(server dispatch), *WFT run* = picked up -> completed (the worker's workflow "
            "code + completion RPC), *activity wait/run* = per activity, median.\n"
        )
        w(
            "| comparator | server total ms | WFT wait ms | WFT run ms | workflow tasks "
            "| activity wait ms | activity run ms | events |"
        )
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, x in b.items():
            w(
                f"| {name} | {_f(x['total'])} | {_f(x['wft_wait'])} | {_f(x['wft_run'])} "
                f"| {x['workflow_tasks']:.0f} | {_f(x['activity_wait_median'])} "
                f"| {_f(x['activity_run_median'])} | {x['events']:.0f} |"
            )
        w("")
    acts = phase.get("activity_ms") or {}
    if acts:
        w(
            "Activity execution time inside the worker (outermost interceptor: step wrapper, "
            "usage interceptor, ledger write, provider call), median / p95 ms:\n"
        )
        w("| worker | activity | n | median | p95 |")
        w("|---|---|---:|---:|---:|")
        for worker, per in acts.items():
            for act, s in per.items():
                if s.get("n") and s.get("p95", 0) >= 0.01:
                    w(f"| {worker} | {act} | {s['n']} | {_f(s['median'], 2)} | {_f(s['p95'], 2)} |")
        w("")


def _throughput_table(w: Any, tp: dict[str, Any]) -> None:
    w(
        "CPU per flow is measured from /proc over the whole run, by process: *server* = "
        "the Temporal dev server, *worker* = this comparator's worker process, *others* = "
        "everything else on the machine (the stand-in, PostgreSQL, the driver, and anything "
        "not ours: this machine is shared, so that column shows the noise).\n"
    )
    w(
        "Each comparator ran in several rounds (every round runs all comparators once, in a "
        "rotated order); figures are medians over rounds, and */ plain* is the median of "
        "the per-round ratios (flows/s of each round in brackets).\n"
    )
    w(
        "| flows in flight | comparator | rounds | seconds | flows/s | / plain (rounds) | "
        "workflow tasks per flow | CPU ms/flow: server | worker | others |"
    )
    w("|---:|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for n, row in tp.items():
        base = row.get("plain", {}).get("flows_per_s")
        for name in sorted(row, key=lambda c: list(LABELS).index(c) if c in LABELS else 99):
            x = row[name]
            if "ratio_to_plain" in x:
                per_round = ", ".join(f"{r['flows_per_s']}" for r in x.get("runs", []))
                ratio = f"{x['ratio_to_plain']:.3f} ({per_round})"
            else:
                ratio = f"{x['flows_per_s'] / base:.3f}" if base else "-"
            cpu = dict(x.get("cpu_ms_per_flow") or {})
            server = cpu.pop("temporal dev server", None)
            worker = cpu.pop("worker (this comparator)", None)
            others = sum(cpu.values()) if cpu else None
            w(
                f"| {n} | {LABELS.get(name, name)} | {x.get('rounds', 1)} | {x['seconds']} "
                f"| {x['flows_per_s']} | {ratio} | {x.get('workflow_tasks_per_flow', '-')} "
                f"| {_f(server)} | {_f(worker)} | {_f(others)} |"
            )
    w("")


def _fanout(w: Any, fan: dict[str, Any]) -> None:
    w("## Fan-out scale (one step fanned out to N models, 0 ms)\n")
    w(
        "Seed-shaped flow with N fake `gpt-fan-XXXX` models (served by the stand-in): parse "
        "-> N assess steps -> synthesis over N results -> report.\n"
    )
    w(
        "| form | N | ok | wall s | history events | history JSON MB | largest event KB "
        "(kind) | largest WFT completion KB (activities) |"
    )
    w("|---|---:|---|---:|---:|---:|---:|---:|")
    for form, rows in fan.items():
        for n, x in rows.items():
            if not x.get("ok"):
                w(f"| {form} | {n} | **no** | - | - | - | {x.get('error', '')} | - |")
                continue
            w(
                f"| {form} | {n} | yes | {x['seconds']} | {x['events']:,} "
                f"| {x['history_json_bytes'] / 1e6:.2f} "
                f"| {x['largest_event_bytes'] / 1024:,.0f} ({x['largest_event_kind']}) "
                f"| {x['largest_completion_bytes'] / 1024:,.0f} "
                f"({x['largest_completion_activities']}) |"
            )
    w("")
    proj = project_limits(fan.get("declarative") or {})
    if proj:
        w(
            "Where Temporal's limits bite for the declarative fan-out, projected linearly "
            "from the measured N=1 and largest-N runs (per extra model: "
            f"{proj['events_per_model']:.2f} events, {proj['history_bytes_per_model']:,.0f} "
            f"history bytes, {proj['completion_bytes_per_model']:,.0f} bytes of "
            f"workflow-task completion, {proj['payload_bytes_per_model']:,.0f} bytes in the "
            "largest single payload):\n"
        )
        w("| limit | bites at N ≈ | note |")
        w("|---|---:|---|")
        for row in proj["rows"]:
            w(f"| {row['limit']} | {row['n']:,} | {row['note']} |")
        w("")


def project_limits(rows: dict[str, Any]) -> dict[str, Any] | None:
    ok = {int(n): x for n, x in rows.items() if x.get("ok")}
    if len(ok) < 2:
        return None
    lo, hi = min(ok), max(ok)
    a, b = ok[lo], ok[hi]
    dn = hi - lo
    ev = (b["events"] - a["events"]) / dn
    hb = (b["history_proto_bytes"] - a["history_proto_bytes"]) / dn
    cb = b["largest_completion_bytes"] / max(1, b["largest_completion_activities"])
    pb = (b["largest_event_bytes"] - a["largest_event_bytes"]) / dn

    def n_for(limit: float, base: float, per: float) -> int:
        return int((limit - base) / per) if per > 0 else 10**9

    return {
        "events_per_model": ev,
        "history_bytes_per_model": hb,
        "completion_bytes_per_model": cb,
        "payload_bytes_per_model": pb,
        "rows": [
            {
                "limit": "4 MB workflow-task completion",
                "n": n_for(LIMITS["completion"], 0, cb),
                "note": "all fan-out steps are scheduled by one workflow task, each carrying "
                "its input (the parse result); `max_concurrency=k` schedules k per task",
            },
            {
                "limit": "2 MB payload",
                "n": n_for(LIMITS["payload"], a["largest_event_bytes"], pb),
                "note": "the synthesis input / flow result hold one result per model",
            },
            {
                "limit": "2,000 pending activities",
                "n": LIMITS["pending"],
                "note": "`max_concurrency` (e.g. 500) removes it",
            },
            {
                "limit": "51,200 history events",
                "n": n_for(LIMITS["events"], a["events"], ev),
                "note": "hard limit; Continue-As-New or child workflows beyond it",
            },
            {
                "limit": "50 MB history",
                "n": n_for(LIMITS["history"], a["history_proto_bytes"], hb),
                "note": "hard limit",
            },
        ],
    }


def _ledger(w: Any, led: dict[str, Any], latency: dict[str, Any] | None) -> None:
    w("## Ledger\n")
    if latency and "0" in latency:
        acts = latency["0"].get("activity_ms") or {}
        steps = [
            ("assess", "plain_assess", "fan-out step, 3 running at once"),
            ("synthesize_assessments", "plain_synthesize", "alone"),
            ("report", "plain_report", "alone"),
        ]
        if acts.get("declarative") and acts.get("declarative_noledger"):
            w(
                "Per-step cost of usage accounting at 0 ms model latency: each activity timed "
                "inside its worker around everything (step wrapper, usage interceptor, ledger "
                "write, provider call), and the ledger write alone (median / p95 ms):\n"
            )
            w(
                "| step | plain activity | baton step, ledger=False | baton step, PostgreSQL "
                "ledger | difference (ledger cost) | of which the write itself |"
            )
            w("|---|---:|---:|---:|---:|---:|")

            def mp(s: dict[str, Any] | None) -> str:
                return (
                    "-" if not s or not s.get("n") else f"{_f(s['median'], 2)} / {_f(s['p95'], 2)}"
                )

            for step, plain_name, note in steps:
                p = acts.get("plain", {}).get(plain_name)
                nl = acts["declarative_noledger"].get(step)
                wl = acts["declarative"].get(step)
                wr = acts["declarative"].get(f"(ledger write) {step}")
                diff = (
                    f"{_f(wl['median'] - nl['median'], 2)} / {_f(wl['p95'] - nl['p95'], 2)}"
                    if wl and nl
                    else "-"
                )
                w(f"| {step} ({note}) | {mp(p)} | {mp(nl)} | {mp(wl)} | {diff} | {mp(wr)} |")
            w("")
    w(
        "Ledger size and query times (rows generated in the database through the store's "
        "engine, into the migrated schema with its indexes, then ANALYZE; 10 rows per "
        "workflow over 90 days, 8 models). median / p95 ms:\n"
    )
    w(
        "| backend | rows | fill s | workflow_totals | steps_for_workflow "
        "| cost_by_model, 1 day | cost_by_model, 90 days (all rows) | record() one call |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, x in led.items():

        def mp2(key: str, x: dict[str, Any] = x) -> str:
            s = x[key]
            return f"{_f(s['median'], 2)} / {_f(s['p95'], 2)}"

        w(
            f"| {backend} | {x['rows']:,} | {x['fill_seconds']} | {mp2('workflow_totals_ms')} "
            f"| {mp2('steps_for_workflow_ms')} | {mp2('cost_by_model_1day_ms')} "
            f"| {mp2('cost_by_model_90days_ms')} | {mp2('record_one_call_ms')} |"
        )
    w("")
