"""A local step's heartbeat timeout: Temporal has none for local activities (run_step
leaves it out), so a short one is no reason to refuse the flow."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

import baton_temporal as baton
from tests.core.test_late_start import runs_a_while


async def test_a_local_step_with_a_short_heartbeat_timeout_is_built_and_runs(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    # Before the build-time heartbeat check this flow file started and ran; a local step
    # never heartbeats, so "every attempt would time out" does not apply to it.
    short = timedelta(seconds=0.05)

    @baton.step(local=True, heartbeat_timeout=short)
    async def local_default(job: baton.Job) -> dict:
        return {}

    # Made non-local where it is added, the short timeout applies again and is refused.
    with pytest.raises(baton.FlowError, match=r"use at least 0\.3 s"):
        baton.new(workflow_name="remote").add("x", local_default, local=False)

    log = tmp_path / "bodies.log"
    flow = baton.new(workflow_name="local-beat").add(
        "work",
        runs_a_while,
        {"log": str(log), "work_s": 1},
        local=True,
        options=baton.StepOptions(heartbeat_timeout=short),
    )
    data = json.loads(flow.to_json())
    assert data["steps"][0]["options"]["heartbeat_timeout"] == 0.05
    plugin = baton.BatonPlugin(steps=[runs_a_while], ledger=False)
    async with Worker(client, task_queue=task_queue, plugins=[plugin]):
        result = await baton.Flow.from_json(data).run(client, task_queue=task_queue)
    assert result.steps["work"].attempt == 1
    assert log.read_text().split() == ["1"]
