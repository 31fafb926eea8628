"""Upgrades are safe: every recorded history replays against the current workflow code.

``tests/histories/<release>/`` holds histories recorded from real runs (the seed
fan-out, quorum, cascade, local steps, retries, failures, a ledger outage, a large
payload, a hand-written workflow) of the previous release and of this one. A change to
``baton_temporal.workflow`` that makes any of them issue other commands fails here:
put it behind ``workflow.patched`` (see ``baton_temporal/workflow/_versioning.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.histories import record
from tests.histories.replay import Recorded, corpus, load, replay

from . import altered

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "527f01c"
CORPUS = corpus()
FLOWS = [r for r in CORPUS if r.workflow_type == "baton.Flow"]


def test_the_corpus_covers_both_releases_and_every_scenario() -> None:
    scenarios = {s.name for s in record.SCENARIOS}
    by_release: dict[str, set[str]] = {}
    for r in CORPUS:
        by_release.setdefault(r.release, set()).add(r.scenario)
        assert load(r).events, f"{r.label}: empty history"
        assert len(load(r).events) == r.events, f"{r.label}: manifest and file disagree"
    assert by_release.get(PREVIOUS_RELEASE) == scenarios
    assert by_release.get("current") == scenarios
    assert {r.workflow_type for r in CORPUS} == {"baton.Flow", "histories.HandwrittenQuality"}


async def test_every_recorded_history_replays() -> None:
    failures = await replay(CORPUS)
    assert not failures, "histories that no longer replay (put the change behind " + (
        "workflow.patched):\n" + "\n".join(f"{k}: {v}" for k, v in failures.items())
    )


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_replay_does_not_depend_on_the_hash_seed(seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.histories.replay"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert f"replayed {len(CORPUS)} histories, 0 failed" in proc.stdout


async def _replay_with(workflow: type, recorded: list[Recorded]) -> dict[str, BaseException | None]:
    replayer = Replayer(workflows=[workflow])
    out: dict[str, BaseException | None] = {}
    for r in recorded:
        result = await replayer.replay_workflow(load(r), raise_on_replay_failure=False)
        out[r.label] = result.replay_failure
    return out


# Which recorded runs each alteration must break. Reordering only shows where the steps
# started together are of different types: Temporal compares activity types and ids,
# not inputs, so swapping two fan-out steps of the same step function goes unseen.
ALTERATIONS = {
    "extra activity": (altered.ExtraActivity, altered.ExtraActivityPatched, FLOWS),
    "missing activity": (altered.MissingActivity, altered.MissingActivityPatched, FLOWS),
    "reordered activities": (
        altered.ReorderedActivities,
        altered.ReorderedActivitiesPatched,
        [r for r in FLOWS if r.scenario in ("cascade", "local_steps")],
    ),
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
async def test_a_change_of_commands_without_a_patch_fails_replay(alteration: str) -> None:
    plain, _, recorded = ALTERATIONS[alteration]
    assert {r.release for r in recorded} == {PREVIOUS_RELEASE, "current"}
    failures = await _replay_with(plain, recorded)
    replayed = [label for label, failure in failures.items() if failure is None]
    assert not replayed, f"{alteration}: these histories replayed although commands changed"
    for label, failure in failures.items():
        assert isinstance(failure, NondeterminismError), f"{label}: {failure!r}"
        assert "Nondeterminism" in str(failure), label


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
async def test_the_same_change_behind_workflow_patched_replays(alteration: str) -> None:
    _, patched, _ = ALTERATIONS[alteration]
    failures = await _replay_with(patched, FLOWS)
    assert not {k: v for k, v in failures.items() if v is not None}
