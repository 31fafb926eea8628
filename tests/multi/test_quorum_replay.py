"""Quorum runs recorded before quorum started early (release 0.1) still replay: the
change is behind ``workflow.patched`` (see _versioning.py). Runs of this release, with
early quorum and cancelled stragglers, are in the replay corpus (tests/histories/current:
quorum_stragglers_cancelled, quorum_straggler_needed, handwritten_quorum).

The histories were recorded on the dev server from the seed-like fan-out of
tests/multi/steps.py (gpt-4o down, quorum=2): by the generic flow workflow, and by the
hand-written workflow below.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from baton_temporal import multi_model
from baton_temporal.workflow import FlowWorkflow

from .steps import assess

HISTORIES = Path(__file__).parent / "histories"
MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"]


@workflow.defn(name="QuorumFanOutByHand", sandboxed=False)
class QuorumFanOutByHand:
    @workflow.run
    async def run(self, text: str) -> dict:
        by_model = await multi_model.run_fan_out(
            assess,
            base="assess",
            models=MODELS,
            args={"down": ["gpt-4o"], "sleep": 0.3},
            quorum=2,
        )
        return dict(by_model)


@pytest.mark.parametrize(
    "name",
    [
        "quorum_flow_0.1",
        "quorum_fan_out_by_hand_0.1",
    ],
)
async def test_recorded_quorum_runs_replay(name: str) -> None:
    data = json.loads((HISTORIES / f"{name}.json").read_text())
    history = WorkflowHistory.from_json(f"replay-{name}", data)
    markers = [e for e in data["events"] if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"]
    # The old runs carry no patch marker (they replay through the old branch).
    assert not markers
    replayer = Replayer(workflows=[FlowWorkflow, QuorumFanOutByHand])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
