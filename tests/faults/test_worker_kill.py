"""Worker processes SIGKILLed at random points of the seed's fan-out pipeline.

Three ``python -m workers.worker`` processes run the seed's steps against one dev
server, the provider stand-in and one PostgreSQL ledger. Each trial starts a flow; after
a random pause (seeded) one worker that is running steps is SIGKILLed and a fresh one
started, so trials overlap: a flow lives through several kills. At the end:

* every run completed;
* no step ran again after an attempt of it completed (no attempt after the one
  Temporal accepted; the accepted attempt is in the ledger once);
* the ledger holds the stand-in's billed calls call for call (same step, same token
  counts). The stand-in bills as a provider does: a request it accepted is billed even
  if the client is killed before the answer. A call whose worker was killed between the
  request and the ledger write is still counted: its intent, written before the request
  left, became a ``lost_reply`` row (input estimated, output unknown) when the step's
  next attempt started. No billed call is without a row. The only rows beyond the billed
  calls are lost replies whose request never reached the stand-in (the worker was killed
  after writing the intent, before the request arrived whole): the ledger cannot tell
  them apart and labels every lost reply "billed if the request reached the provider (not
  known)". They are counted and printed.

``TRIALS`` is 6 in the suite; ``make fault-kill`` runs the 20-trial version
(``BATON_KILL_TRIALS=20``) and prints its figures.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from baton_temporal.ledger import LedgerStore
from baton_temporal.pricing import GenAIPricesPricer
from baton_temporal.testing import StandIn
from baton_temporal.testing.postgres import PostgresServer

from .support import (
    ACTIVITY,
    LLM_STEPS,
    WorkerProcess,
    cancelled_attempts,
    classify,
    dump,
    ledger_rows,
    normalised_tokens,
    seed_flow_data,
    spawn_worker,
    start_seed_flow,
    table,
    tag_responder,
    wait_until,
)

TRIALS = int(os.environ.get("BATON_KILL_TRIALS", "6"))
# 20 trials: ~40-60 s on an idle 2-core machine; much longer when other work loads it.
pytestmark = pytest.mark.timeout(120 + 30 * TRIALS)
FLOWS_PER_TRIAL = 2
POOL = 3  # worker processes alive at once
RANDOM_SEED = 20260707
LATENCY_S = 0.4  # per model call, so that kills land while calls are in flight
# The random pause before each kill, once a worker is running steps. A fresh worker
# process needs ~3 s of CPU on this 2-core machine (imports, pricing data, the provider
# SDKs at its first call, workflow sandboxes) before it runs any.
PAUSE_S = (0.5, 2.0)


async def test_sigkill_workers_at_random_points_of_the_fan_out(
    temporal_env: WorkflowEnvironment,
    client: Client,
    postgres_server: PostgresServer,
    tmp_path: Path,
) -> None:
    rng = random.Random(RANDOM_SEED)
    uid = uuid.uuid4().hex[:6]
    task_queue = f"faults-kill-{uid}"
    ledger_url = postgres_server.create_database(f"faults_kill_{uid}")
    store = LedgerStore.from_url(ledger_url, pricer=GenAIPricesPricer())
    await store.migrate()
    address = temporal_env.client.service_client.config.target_host
    began = time.monotonic()

    async with StandIn(latency=LATENCY_S, responder=tag_responder) as standin:
        workers: list[WorkerProcess] = []

        def spawn() -> WorkerProcess:
            worker = spawn_worker(
                len(workers),
                address=address,
                task_queue=task_queue,
                standin=standin,
                ledger_url=ledger_url,
                log_dir=tmp_path,
            )
            workers.append(worker)
            return worker

        def busy() -> list[WorkerProcess]:
            # Live workers that have had a model answer: past their start-up (imports,
            # the SDKs loaded at the first call), running steps.
            worked = {r.api_key_fingerprint for r in standin.requests if r.billed}
            return [w for w in workers if w.alive() and w.fingerprint in worked]

        handles: dict[str, Any] = {}
        kills: list[dict[str, Any]] = []
        try:
            first = [spawn() for _ in range(POOL)]
            await wait_until(lambda: all(w.ready() for w in first), 90, "workers ready")
            for trial in range(TRIALS):
                for _ in range(FLOWS_PER_TRIAL):
                    n = len(handles)
                    data = seed_flow_data(f"flowtag-{uid}-{n}", f"kill-{uid}-{n}")
                    handles[data["workflow_id"]] = await start_seed_flow(client, data, task_queue)
                # A fresh process needs seconds of CPU before it runs any step (longer
                # on a loaded machine): wait until a worker is running steps, then kill
                # one such worker at a random moment. Killing processes that never ran
                # a step would test nothing and stall every flow.
                await wait_until(lambda: bool(busy()), 60, "a worker running steps")
                await asyncio.sleep(rng.uniform(*PAUSE_S))
                victim = rng.choice(busy())
                in_flight = sum(
                    1
                    for r in standin.requests
                    if r.api_key_fingerprint == victim.fingerprint and r.outcome == "pending"
                )
                victim.kill()
                kills.append({"trial": trial, "worker": victim.number, "in_flight": in_flight})
                spawn()
            trials_done = time.monotonic()
            results = await asyncio.wait_for(
                asyncio.gather(*(h.result() for h in handles.values())), 90
            )
        finally:
            for worker in workers:
                worker.stop()
        requests = standin.requests
    elapsed = time.monotonic() - began
    drain = time.monotonic() - trials_done
    rows = await ledger_rows(store, f"kill-{uid}-")
    await store.close()
    dump(tmp_path / "seen.json", requests=requests, rows=rows, workers=workers, kills=kills)

    # ---- every run completed --------------------------------------------------------
    assert len(results) == TRIALS * FLOWS_PER_TRIAL
    accepted: dict[tuple[str, str], int] = {}
    for result in results:
        assert result.status == "completed" and not result.failed
        assert result.results["report"]["markdown"].startswith("# Document quality report")
        for step in LLM_STEPS:
            # The attempt whose completion Temporal accepted.
            accepted[(result.workflow_id, step)] = result.steps[step].attempt
    retried_steps = sum(1 for r in results for s in r.steps.values() if s.attempt > 1)

    # ---- the stand-in's view, by (flow, step) -------------------------------------------
    killed_at = {w.fingerprint: w.killed_at for w in workers if w.killed_at is not None}
    cancelled = {w.fingerprint: cancelled_attempts(w.log) for w in workers}
    calls: dict[tuple[str, str], list[Any]] = collections.defaultdict(list)
    for request in requests:
        tag, step = classify(request)
        assert tag is not None and step in LLM_STEPS, f"unclassified request {request.index}"
        calls[(tag.replace("flowtag-", "kill-"), step)].append(request)
    assert set(calls) == set(accepted)
    billed = [r for r in requests if r.billed]
    unexpected = [r for r in requests if r.outcome not in ("ok", "client_gone")]
    assert not unexpected, [(r.index, r.outcome) for r in unexpected]
    cut_by_kill = [
        r for r in requests if r.outcome == "client_gone" and r.api_key_fingerprint in killed_at
    ]
    # A call cut off on a live worker: Temporal had given up on that attempt (its
    # heartbeats came late, or the task reached a starved worker after its time) and the
    # worker cancelled it when it heard so.
    cut_alive = [
        r for r in requests if r.outcome == "client_gone" and r.api_key_fingerprint not in killed_at
    ]

    # ---- the ledger's view ---------------------------------------------------------------
    by_step: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        by_step[(row["workflow_id"], row["step"])].append(row)
    assert not [r for r in rows if r["status"] == "pending"], "intents left unreconciled"
    lost_rows = [r for r in rows if r["status"] == "lost_reply"]
    complete_rows = [r for r in rows if r["status"] != "lost_reply"]
    assert all("not known" in r["price_note"] for r in lost_rows)
    lost_billed: list[Any] = []  # billed, reply lost (killed, cancelled): a lost_reply row
    lost_unsent = 0  # lost_reply rows whose request never reached the stand-in
    client_timeouts = 0  # lost replies of requests whose client timed out (loaded machine)
    abandoned_rows = 0
    stale_calls: list[Any] = []
    for key, made in calls.items():
        recorded = [r for r in by_step.get(key, []) if r["status"] != "lost_reply"]
        lost_here = [r for r in by_step.get(key, []) if r["status"] == "lost_reply"]
        assert all(r["status"] in ("ok", "step_failed") for r in recorded), (key, recorded)
        # No step ran again once an attempt of it had completed: the attempt Temporal
        # accepted is in the ledger once, and no later attempt exists.
        final = [r for r in recorded if r["attempt"] == accepted[key]]
        assert len(final) == 1 and final[0]["status"] == "ok", (key, accepted[key], recorded)
        assert max(r["attempt"] for r in recorded) == accepted[key], key
        assert all(r["attempt"] < accepted[key] for r in lost_here), key
        # Calls made after that: an older attempt's task that reached a starved worker
        # late (Temporal had already retried it); the worker cancels it at its first
        # heartbeat. Counted, not hidden.
        done_at = final[0]["recorded_at"]
        stale_calls += [r for r in made if datetime.fromtimestamp(r.time, UTC) > done_at]
        abandoned_rows += len(recorded) - 1
        # Call for call: each row is one billed call (same token counts) made before it.
        unmatched = [r for r in made if r.billed]
        for row in recorded:
            twin = max(
                (
                    r
                    for r in unmatched
                    if r.outcome == "ok"
                    and normalised_tokens(r) == (row["input_tokens"], row["output_tokens"])
                    and datetime.fromtimestamp(r.time, UTC) < row["recorded_at"]
                ),
                key=lambda r: r.time,
                default=None,
            )
            assert twin is not None, f"ledger row of {key} matches no billed call"
            unmatched.remove(twin)
        # A billed call without a usage row: its worker died between the request and the
        # write (before or after the reply), or its attempt was cancelled while waiting
        # (Temporal had given up on it). Its intent is there, as a lost reply.
        # Or, on a starved machine, the client's own timeout fired first: the lost reply
        # then says no reply came back.
        timed_out = [r for r in lost_here if "no reply came back" in r["price_note"]]
        for request in unmatched:
            death = killed_at.get(request.api_key_fingerprint)
            if death is None or death < request.time:
                cancelled_here = (key[0], ACTIVITY[key[1]]) in cancelled[
                    request.api_key_fingerprint
                ]
                assert cancelled_here or timed_out, (
                    f"billed call {request.index} of {key} has no row, and its attempt was "
                    "neither killed nor cancelled, nor did it time out"
                )
        client_timeouts += len(timed_out)
        assert len(unmatched) <= len(lost_here), (
            f"{key}: {len(unmatched)} billed calls without a row, {len(lost_here)} lost replies"
        )
        lost_billed += unmatched
        # The other lost replies: killed after the intent was written, before the request
        # reached the stand-in. Each lies before some kill.
        last_kill = max(killed_at.values(), default=0.0)
        assert all(r["requested_at"].timestamp() <= last_kill for r in lost_here), key
        lost_unsent += len(lost_here) - len(unmatched)
    # Every billed call is in the ledger: with its usage, or as a lost reply.
    assert len(complete_rows) + len(lost_billed) == len(billed)
    assert len(lost_rows) == len(lost_billed) + lost_unsent
    # What the ledger cannot know stays small: at most one per kill.
    assert lost_unsent <= len(kills)
    gaps = [
        killed_at[r.api_key_fingerprint] - r.time - LATENCY_S
        for r in lost_billed
        if r.api_key_fingerprint in killed_at and r.outcome == "ok"
    ]

    figures = [
        ("trials (worker SIGKILLs)", len(kills)),
        ("kills with calls in flight", sum(1 for k in kills if k["in_flight"])),
        ("worker processes started", len(workers)),
        ("runs started / completed", f"{len(handles)} / {len(results)}"),
        ("steps that needed a retry", retried_steps),
        ("model requests", len(requests)),
        ("calls cut off by a kill (billed all the same)", len(cut_by_kill)),
        ("calls cut off on a live worker (attempt given up; billed)", len(cut_alive)),
        ("calls billed by the stand-in", len(billed)),
        ("calls in the ledger (rows)", len(rows)),
        ("  with their usage", len(complete_rows)),
        ("  of which attempts Temporal had given up on", abandoned_rows),
        ("  lost replies (intent reconciled)", len(lost_rows)),
        ("    billed (reply lost to a kill or a cancellation)", len(lost_billed)),
        ("    of which the client timed out waiting", client_timeouts),
        ("    never reached the stand-in (not billed; unknowable)", lost_unsent),
        ("  kill this long after the reply (s)", " ".join(f"{g:.2f}" for g in gaps) or "-"),
        ("billed vs recorded (rows - unknowable)", f"{len(billed)} vs {len(rows) - lost_unsent}"),
        ("billed calls without a row", len(billed) - len(complete_rows) - len(lost_billed)),
        ("completed steps run again (later attempt)", 0),
        (
            "calls by stale attempts after completion (billed)",
            f"{len(stale_calls)} ({sum(r.billed for r in stale_calls)})",
        ),
        ("wall time (s), of which after the last kill", f"{elapsed:.1f}, {drain:.1f}"),
    ]
    print(f"\nworker SIGKILL trials (seed fan-out, {POOL} workers, Postgres ledger)")
    print(table(figures, ("figure", "value")))
