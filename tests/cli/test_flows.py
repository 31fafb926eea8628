"""``baton start`` / ``baton status`` against the test's Temporal, with a worker in the test."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from baton_temporal.llm import LLMConfig
from baton_temporal.testing import StandIn
from workers.examples import seed

from ._util import run_baton

DOCUMENT = "A short proposal.\n\nIt has two paragraphs, and a plan."

YAML_FLOW = """\
# A flow as a user writes it by hand: the same data as flow.to_json(), in YAML.
baton_flow: 1
workflow_name: analysis-yaml
workflow_id: {workflow_id}
steps:
  - name: parse
    step: parse_doc
    args:
      text: |
        First paragraph of the document.

        Second paragraph, a little longer than the first one.
  - name: assess
    step: assess
    deps: [parse]
    args: {{workflow_model: gpt-4o}}
  - name: report
    step: report
    deps: [assess]
    args: {{workflow_model: claude-sonnet-4-20250514}}
"""


def _started_id(out: str) -> str:
    """The workflow id `baton start` printed ("started flow 'x' as workflow ID on ...")."""
    found = re.search(r"as workflow (\S+) on task queue", out)
    assert found, out
    return found.group(1)


def _step_rows(text: str) -> dict[str, str]:
    """{step: state} from a step table printed by `baton status` / `start --wait`."""
    rows = {}
    for line in text.splitlines():
        found = re.match(r"^(\w+)\s+(pending|running|completed|failed|cancelled)\s", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


async def test_start_json_and_yaml_then_status(
    baton_worker, task_queue: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    json_file = tmp_path / "flow.json"
    json_id = f"cli-json-{uuid.uuid4().hex[:8]}"
    json_file.write_text(seed.analysis_flow(DOCUMENT).to_json(indent=2))
    yaml_id = f"cli-yaml-{uuid.uuid4().hex[:8]}"
    yaml_file = tmp_path / "flow.yaml"
    yaml_file.write_text(YAML_FLOW.format(workflow_id=yaml_id))

    async with (
        StandIn() as standin,
        baton_worker(steps=seed.STEPS, llm=standin.config(), ledger=cli_env["BATON_LEDGER_URL"]),
    ):
        ran = await run_baton(
            "start", str(json_file), "--id", json_id, "--task-queue", task_queue,
            "--wait", "--json", env=cli_env,
        )  # fmt: skip
        assert ran.code == 0, ran
        assert f"as workflow {json_id}" in ran.out
        result = json.loads(ran.out[ran.out.index("{") :])
        assert result["status"] == "completed"
        assert set(result["results"]) == {"parse", "assess", "report"}
        assert result["results"]["report"]["markdown"].startswith("# Document quality report")

        ran = await run_baton(
            "start", str(yaml_file), "--task-queue", task_queue, "--wait", env=cli_env
        )
        assert ran.code == 0, ran
        assert f"started flow 'analysis-yaml' as workflow {yaml_id}" in ran.out
        assert _step_rows(ran.out) == {s: "completed" for s in ("parse", "assess", "report")}
        assert '"words": 14' in ran.out  # the results, as JSON

        for workflow_id, steps in ((json_id, 3), (yaml_id, 3)):
            ran = await run_baton("status", workflow_id, env=cli_env)
            assert ran.code == 0, ran
            assert "status      COMPLETED" in ran.out
            assert f"{steps} completed" in ran.out
            assert _step_rows(ran.out) == {s: "completed" for s in ("parse", "assess", "report")}
            model = "gpt-4o" if workflow_id == yaml_id else "claude-opus-4-20250514"
            assert re.search(rf"^assess\s+completed\s+{model}\s+1\s", ran.out, re.M), ran.out

        # The worker's ledger recorded the flows' calls: `baton stats` reads them back.
        ran = await run_baton("stats", "steps", yaml_id, env=cli_env)
        assert ran.code == 0, ran
        assert re.search(r"^assess\s+gpt-4o\s+1\s", ran.out, re.M), ran.out
        assert re.search(r"^report\s+claude-sonnet-4-20250514\s+1\s", ran.out, re.M), ran.out


async def test_start_without_wait_then_watch(
    baton_worker, task_queue: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(seed.quality_flow(DOCUMENT).to_json())
    async with (
        StandIn(latency=0.2) as standin,
        baton_worker(steps=seed.STEPS, llm=standin.config(), ledger=cli_env["BATON_LEDGER_URL"]),
    ):
        ran = await run_baton("start", str(flow_file), "--task-queue", task_queue, env=cli_env)
        assert ran.code == 0, ran
        workflow_id = _started_id(ran.out)
        assert f"baton status {workflow_id} --watch" in ran.out
        ran = await run_baton("status", workflow_id, "--watch", "--interval", "0.2", env=cli_env)
    assert ran.code == 0, ran
    final = re.split(r"\n--- \d\d:\d\d:\d\d\n", ran.out)[-1]
    assert "COMPLETED" in final
    names = ["parse", "assess_sonnet_4", "assess_opus_4", "assess_gpt_4o", "assess_synthesis"]
    assert _step_rows(final) == {n: "completed" for n in [*names, "report"]}


async def test_failed_flows_say_why_in_one_line(
    baton_worker, task_queue: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        json.dumps(
            {
                "baton_flow": 1,
                "workflow_name": "typo",
                "steps": [{"name": "parse", "step": "parse_dco", "args": {"text": "x"}}],
            }
        )
    )
    no_key = tmp_path / "no_key.json"
    no_key_id = f"cli-no-key-{uuid.uuid4().hex[:8]}"
    no_key.write_text(seed.analysis_flow(DOCUMENT, models={"assess": "gpt-4o"}).to_json())

    # A worker without any provider key.
    # unregistered_step_wait=0: the typo fails at once instead of waiting for a rollout.
    async with baton_worker(
        steps=seed.STEPS, llm=LLMConfig(), ledger=False, unregistered_step_wait=0
    ):
        ran = await run_baton(
            "start", str(unknown), "--task-queue", task_queue, "--wait", env=cli_env
        )
        assert ran.code == 2, ran
        assert len(ran.err_lines) == 1, ran.err
        assert "Traceback" not in ran.err
        assert "UnknownStep" in ran.err and "no step named 'parse_dco'" in ran.err
        assert _step_rows(ran.out) == {"parse": "failed"}

        ran = await run_baton(
            "start", str(no_key), "--id", no_key_id, "--task-queue", task_queue, "--wait",
            env=cli_env,
        )  # fmt: skip
        assert ran.code == 2, ran
        assert len(ran.err_lines) == 1, ran.err
        assert "MissingAPIKey" in ran.err and "OPENAI_API_KEY" in ran.err, ran.err
        assert f"workflow {no_key_id} failed" in ran.err

        # `status` of a failed flow: the steps (from the worker) and the cause.
        ran = await run_baton("status", no_key_id, env=cli_env)
        assert ran.code == 0, ran
        assert "status      FAILED" in ran.out
        assert _step_rows(ran.out) == {
            "parse": "completed",
            "assess": "failed",
            "report": "cancelled",
        }
        assert "MissingAPIKey" in ran.out
