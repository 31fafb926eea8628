"""``baton stats`` / ``baton db`` on real SQLite ledgers, and the one-line errors."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from baton_temporal.ledger import LedgerStore, UsageRecord
from baton_temporal.usage import LLMUsage

from ._util import clean_env, run_baton


async def _fill(url: str) -> None:
    """Two workflows' usage: gpt-4o (priced) and a local model (unpriced); one old row."""
    async with LedgerStore.from_url(url) as store:
        await store.migrate()
        now = datetime.now(UTC)
        common = {"run_id": "run-1", "workflow_name": "brief", "attempt": 1}
        await store.record(
            UsageRecord.for_attempt(
                [LLMUsage(model="gpt-4o", input_tokens=1000, output_tokens=200)],
                workflow_id="wf-stats", step="summarize", activity_id="1", **common,
            )
            + UsageRecord.for_attempt(
                [LLMUsage(model="my-local-llama", input_tokens=300, output_tokens=30)],
                workflow_id="wf-stats", step="critique", activity_id="2", **common,
            )
            + UsageRecord.for_attempt(
                [LLMUsage(model="gpt-4o", input_tokens=50, output_tokens=5)],
                workflow_id="wf-old", step="summarize", activity_id="1",
                recorded_at=now - timedelta(days=40), **common,
            )
        )  # fmt: skip


async def test_stats_of_a_filled_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    await _fill(url)
    env = clean_env(BATON_LEDGER_URL=url)

    ran = await run_baton("stats", "totals", "wf-stats", env=env)
    assert ran.code == 0, ran
    assert "calls                 2" in ran.out
    assert "input tokens          1,300" in ran.out
    # gpt-4o at $2.50 / $10 per million tokens; the local model has no price.
    assert "cost (USD)            $0.004500 (+1 unpriced)" in ran.out

    ran = await run_baton("stats", "steps", "wf-stats", env=env)
    assert ran.code == 0, ran
    lines = ran.out.splitlines()
    assert lines[0].split()[:3] == ["step", "model", "calls"]
    assert lines[2].startswith("summarize") and lines[2].endswith("$0.004500")
    assert lines[3].startswith("critique") and lines[3].endswith("unpriced")

    ran = await run_baton("stats", "models", "--since", "7d", env=env)
    assert ran.code == 0, ran
    rows = {line.split()[0]: line for line in ran.out.splitlines()[3:]}
    assert set(rows) == {"gpt-4o", "my-local-llama", "total"}
    assert rows["gpt-4o"].split()[1] == "1" and rows["gpt-4o"].endswith("$0.004500")
    assert rows["my-local-llama"].endswith("unpriced")
    assert rows["total"].split()[1] == "2"

    # --from/--to reach the 40-day-old row; --json is machine-readable.
    start = (datetime.now(UTC) - timedelta(days=60)).date().isoformat()
    ran = await run_baton("stats", "models", "--from", start, "--json", env=env)
    assert ran.code == 0, ran
    by_model = {m["model"]: m for m in json.loads(ran.out)}
    assert by_model["gpt-4o"]["calls"] == 2

    ran = await run_baton("stats", "totals", "no-such-workflow", env=env)
    assert ran.code == 0 and "no LLM usage recorded" in ran.out

    ran = await run_baton("db", "prune", "--older-than", "30d", env=env)
    assert ran.code == 0, ran
    assert "deleted 1 usage rows and 0 debug log rows" in ran.out
    ran = await run_baton("stats", "models", "--from", start, "--json", env=env)
    assert {m["model"]: m["calls"] for m in json.loads(ran.out)}["gpt-4o"] == 1


async def test_db_upgrade_then_stats_and_unmigrated_ledgers(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "ledger.sqlite3"
    ran = await run_baton("db", "upgrade", "--url", f"sqlite:///{fresh}")
    assert ran.code == 0, ran
    assert "up to date" in ran.out
    ran = await run_baton("stats", "steps", "wf-1", "--url", f"sqlite:///{fresh}")
    assert ran.code == 0, ran
    assert "no LLM usage recorded for workflow wf-1" in ran.out
    again = await run_baton("db", "upgrade", "--url", f"sqlite:///{fresh}")
    assert again.code == 0, again

    # A database without the ledger tables: exit 2, one line, the command that fixes it.
    bare = tmp_path / "bare.sqlite3"
    bare.write_bytes(b"")
    env = clean_env(BATON_LEDGER_URL=f"sqlite:///{bare}")
    ran = await run_baton("stats", "totals", "wf-1", env=env)
    assert ran.code == 2, ran
    assert len(ran.err_lines) == 1 and "Traceback" not in ran.err
    assert "baton db upgrade" in ran.err and "no ledger tables" in ran.err

    # No ledger file at all: said so, and the file is not created by asking.
    missing = tmp_path / "missing.sqlite3"
    ran = await run_baton("stats", "models", "--url", f"sqlite:///{missing}")
    assert ran.code == 2 and len(ran.err_lines) == 1, ran
    assert f"no ledger at {missing}" in ran.err
    assert not missing.exists()

    # A ledger database that cannot be reached.
    ran = await run_baton("stats", "totals", "wf-1", "--url", "postgresql://u@127.0.0.1:1/db")
    assert ran.code == 2 and len(ran.err_lines) == 1, ran
    assert "127.0.0.1" in ran.err and "unavailable" in ran.err

    # The module form of the command behaves the same.
    ran = await run_baton(
        "stats", "totals", "wf-1", env=env, program=(sys.executable, "-m", "baton_temporal.cli")
    )
    assert ran.code == 2 and "baton db upgrade" in ran.err, ran


async def test_unreachable_temporal_is_one_line(tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps({"baton_flow": 1, "workflow_name": "w", "steps": [{"name": "a", "step": "a"}]})
    )
    env = clean_env(TEMPORAL_ADDRESS="127.0.0.1:1")
    commands = [
        ("start", str(flow)),
        ("status", "some-workflow"),
        ("worker", "--steps", "baton_temporal.examples.seed"),
    ]
    for args in commands:
        ran = await run_baton(*args, env=env, cwd=tmp_path)
        assert ran.code == 2, ran
        assert len(ran.err_lines) == 1, ran.err
        line = ran.err_lines[0]
        assert "Traceback" not in ran.err
        assert "cannot reach Temporal at 127.0.0.1:1" in line
        assert "baton dev" in line and "TEMPORAL_ADDRESS" in line

    ran = await run_baton("start", str(flow), "--debug", env=env)
    assert ran.code == 2 and "Traceback" in ran.err


async def test_bad_flow_files(tmp_path: Path) -> None:
    env = clean_env(TEMPORAL_ADDRESS="127.0.0.1:1")  # never reached: files fail first
    cases = {
        "cut.json": ('{"baton_flow": 1, "steps": [', "flow JSON is malformed at line 1"),
        "cycle.yaml": (
            "baton_flow: 1\nworkflow_name: w\nsteps:\n"
            "  - {name: a, step: s, deps: [b]}\n  - {name: b, step: s, deps: [a]}\n",
            "cycle",
        ),
        "list.yml": ("- just\n- a list\n", "a flow file holds one mapping"),
        "tabs.yaml": ("baton_flow: 1\nsteps:\n\t- name: a\n", "flow YAML is malformed at line 3"),
        "missing.json": (None, "no flow file"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        ran = await run_baton("start", str(path), env=env)
        assert ran.code == 2, (name, ran)
        assert len(ran.err_lines) == 1 and "Traceback" not in ran.err, (name, ran.err)
        assert expected in ran.err, (name, ran.err)
        assert ran.err.startswith(f"baton: {path}") or name == "missing.json", ran.err
