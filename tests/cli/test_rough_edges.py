"""Rough edges a new user met, each tested the way that user met it: the real ``baton``
program against the test's Temporal, a worker in the test, the stand-in, a ledger file."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

import baton_temporal as baton
from baton_temporal import stats
from baton_temporal.cli._hints import worker_hint
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import StandIn
from baton_temporal.testing.standin import default_answer, quoted_verdicts
from workers.examples import seed

from ._util import run_baton

DOCUMENT = "A short proposal.\n\nIt has two paragraphs, and a plan."


def _started_id(out: str) -> str:
    found = re.search(r"as workflow (\S+) on task queue", out)
    assert found, out
    return found.group(1)


# ----------------------------------------------------------- a fresh id for each start


def test_a_generated_id_stays_out_of_the_file_and_a_chosen_one_is_kept() -> None:
    generated = seed.analysis_flow(DOCUMENT)
    assert "workflow_id" not in generated.to_dict()
    first, second = (baton.Flow.from_json(generated.to_json()) for _ in range(2))
    assert first.workflow_id != second.workflow_id  # a fresh id for each read
    assert "workflow_id" not in first.to_dict()  # and it stays out when written again
    # Building on a flow keeps it generated; an id someone chose is written.
    assert "workflow_id" not in generated.add("again", seed.report, deps=["report"]).to_dict()
    chosen = baton.new(workflow_name="analysis", workflow_id="brief-42").add(
        "parse", seed.parse_doc, {"text": DOCUMENT}
    )
    assert chosen.to_dict()["workflow_id"] == "brief-42"
    assert baton.Flow.from_json(chosen.to_json()).workflow_id == "brief-42"


async def test_the_same_file_started_twice_then_status_and_stats(
    baton_worker, task_queue: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Two starts of one file are two runs, each with its own ledger rows; `status` shows
    the model the ledger recorded for a step that picks its own (the seed's `report`:
    no "workflow_model" in its args, so the flow's step state has none); `stats totals`
    says which steps it counts."""
    flow = seed.quality_flow(DOCUMENT)
    assert "workflow_model" not in flow.node("report").args
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(flow.to_json(indent=2))
    async with (
        StandIn() as standin,
        baton_worker(steps=seed.STEPS, llm=standin.config(), ledger=cli_env["BATON_LEDGER_URL"]),
    ):
        ids = []
        for _ in range(2):
            ran = await run_baton(
                "start", str(flow_file), "--task-queue", task_queue, "--wait", env=cli_env
            )
            assert ran.code == 0, ran
            ids.append(_started_id(ran.out))
        assert ids[0] != ids[1], ids
        ran = await run_baton("status", ids[1], env=cli_env)
    assert ran.code == 0, ran
    assert re.search(rf"^report\s+completed\s+{seed.DEFAULT_MODEL}\s+1\s", ran.out, re.M), ran.out
    assert re.search(r"^parse\s+completed\s+-\s+1\s", ran.out, re.M), ran.out  # no LLM call

    store = LedgerStore.from_url(cli_env["BATON_LEDGER_URL"])
    try:
        for workflow_id in ids:
            totals = await stats.workflow_totals(workflow_id, store=store)
            # 5 of the 6 steps call a model once: one run's rows, not both runs'.
            assert (totals.calls, totals.attempts, totals.steps) == (5, 5, 5), totals
    finally:
        await store.close()
    # A chosen id that ran before is kept, and the start says the stats will add up.
    async with (
        StandIn() as standin,
        baton_worker(steps=seed.STEPS, llm=standin.config(), ledger=cli_env["BATON_LEDGER_URL"]),
    ):
        ran = await run_baton(
            "start", str(flow_file), "--id", ids[0], "--task-queue", task_queue, env=cli_env
        )
    assert ran.code == 0, ran
    assert f"as workflow {ids[0]} on" in ran.out, ran.out
    assert f"note: workflow id {ids[0]!r} ran before (completed at " in ran.err, ran.err
    assert "pass --id NEW_ID, or drop workflow_id from the file" in ran.err, ran.err
    # What `baton stats totals` prints (stats.format_totals): it names what it counts.
    table = stats.format_totals(totals)
    assert re.search(r"^steps with LLM calls\s+5$", table, re.M), table
    assert not re.search(r"^steps\s+\d", table, re.M), table


# ------------------------------------------------------------------ status hints


@pytest.mark.slow  # the status query waits 5 s for a worker that never comes
async def test_status_of_a_hand_written_workflow_does_not_suggest_baton_worker(
    client, task_queue: str, cli_env: dict[str, str]
) -> None:
    """A hand-written workflow whose worker is gone: `baton worker` cannot serve it, so
    the hint names the user's own worker program and the ledger instead."""
    from tests.core.handwritten import HandwrittenBrief

    workflow_id = f"hand-{uuid.uuid4().hex[:8]}"
    # No worker polls the queue: the run stays on its first workflow task.
    await client.start_workflow(
        HandwrittenBrief.run, "https://example.com", id=workflow_id, task_queue=task_queue
    )
    ran = await run_baton("status", workflow_id, env=cli_env, timeout=30)
    assert ran.code == 0, ran
    assert "HandwrittenBrief is a hand-written workflow" in ran.out, ran.out
    assert "worker --task-queue" not in ran.out, ran.out
    assert "workflows=[HandwrittenBrief]" in ran.out, ran.out
    assert f"stats steps {workflow_id}`" in ran.out, ran.out
    await client.get_workflow_handle(workflow_id).terminate("test over")


def test_worker_hint_for_a_declared_flow_names_baton_worker() -> None:
    hint = worker_hint(baton.FLOW_WORKFLOW_TYPE, "gpu", "wf-1")
    assert "worker --task-queue gpu --steps MODULE" in hint
    assert "hand-written" not in hint


# ------------------------------------------------------ the stand-in's answers agree


SEED_LABELS = {"poor": range(1, 4), "fair": range(4, 7), "good": range(7, 9)}
SEED_LABELS["excellent"] = range(9, 11)


async def test_offline_answers_agree_with_each_other(baton_worker, client, task_queue: str) -> None:
    """Every score goes with its label, the consensus label goes with the consensus
    score, and the synthesis note and the report's verdict repeat that consensus."""
    # Documents whose three assessments come out with a majority label, and without one
    # (labels poor, fair and excellent: the tie-break by model order must not pair the
    # median score with another model's label).
    texts = [DOCUMENT, *(f"Document {n}.\n\nIt has a plan." for n in range(5))]
    async with (
        StandIn() as standin,
        baton_worker(steps=seed.STEPS, llm=standin.config(), ledger=False),
    ):
        results = [
            (await seed.quality_flow(text).run(client, task_queue=task_queue)).results
            for text in texts
        ]
    no_majority = 0
    for results_ in results:
        synthesis = results_["assess_synthesis"]
        for step, result in results_.items():
            if step.startswith("assess_") and step != "assess_synthesis":
                assert result["score"] in SEED_LABELS[result["label"]], result
        score, label = synthesis["consensus_score"], synthesis["consensus_label"]
        assert score in SEED_LABELS[label], synthesis
        assert synthesis["note"].startswith(f"Verdict: {score}/10 ({label})"), synthesis
        verdict = results_["report"]["markdown"].splitlines()[-1]
        assert verdict.startswith(f"Verdict: {score}/10 ({label})"), verdict
        no_majority += synthesis["agreement"] <= 0.5
    assert no_majority, "no document without a majority label: pick other texts"


def test_quoted_verdicts_are_what_the_seed_writes() -> None:
    """The stand-in reads the verdicts in the seed's synthesis and report prompts, and
    nothing in its assessment prompt (which names the scale, not a verdict)."""
    assert quoted_verdicts("- gpt-4o: 9 (excellent)\n- o3: 2 (poor)") == [9, 2]
    assert quoted_verdicts("Consensus score **6** (fair, agreement 67%).\n- gpt-4o: 9") == [6]
    assert quoted_verdicts("report: score 7 (good) by gpt-4o") == [7]
    assert quoted_verdicts(DOCUMENT) == []
    # A document being rated that itself quotes a verdict still gets the JSON it asks for.
    document = "Our last review rated this 9 (excellent) and 7 (good)."
    prompt = f"system: {seed.ASSESS_PROMPT}\nuser: {document}"
    # The seed asks for its scores as structured output (a schema, not the word JSON).
    answer = default_answer("gpt-4o", prompt, document, wants_json=True)
    assert json.loads(answer) == {"score": 7, "label": "good"}


def test_a_broken_step_module_is_named_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    from baton_temporal.worker import load_steps

    (tmp_path / "broken_steps_mod.py").write_text("import baton_temporal as baton\ndef f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as err:
        load_steps(["broken_steps_mod"])
    message = str(err.value)
    assert message.startswith("step module 'broken_steps_mod' failed while being imported: ")
    assert "SyntaxError" in message and "line 2" in message and "fix the module" in message
