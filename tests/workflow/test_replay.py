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
from tests.histories.replay import (
    Recorded,
    StepOrderChanged,
    corpus,
    load,
    recorded_steps,
    replay,
    replayer,
)

from . import altered

ROOT = Path(__file__).resolve().parents[2]
# Releases whose recorded runs must keep replaying. The newest one gets every scenario
# it could record; an older one keeps the scenarios that existed then.
PREVIOUS_RELEASE = "71585d7"
OLDER_RELEASES = {"527f01c"}
OLDEST_CORE = {
    "seed_analysis",
    "seed_quality",
    "quorum_slow_model",
    "quorum_failed_model",
    "cascade",
    "ignore_failed",
    "local_steps",
    "retry_then_succeed",
    "fail_for_good",
    "max_concurrency",
    "handwritten",
    "handwritten_quorum",
    "ledger_down",
    "large_payload",
}
PREVIOUS_CORE = OLDEST_CORE | {
    "continue_as_new_first_run",
    "continue_as_new_last_run",
    "quorum_one_slot",
    "quorum_straggler_needed",
    "quorum_stragglers_cancelled",
    "unregistered_step",
}
CORPUS = corpus()
FLOWS = [r for r in CORPUS if r.workflow_type == "baton.Flow"]
# Runs that scheduled a step: a run refused at its first workflow task (bad input) has no
# activity for an alteration of the activities to break.
STEPPED_FLOWS = [r for r in FLOWS if recorded_steps(load(r))]


def test_the_corpus_covers_both_releases_and_every_scenario() -> None:
    scenarios = {s.name for s in record.SCENARIOS}
    by_release: dict[str, set[str]] = {}
    for r in CORPUS:
        by_release.setdefault(r.release, set()).add(r.scenario)
        assert load(r).events, f"{r.label}: empty history"
        assert len(load(r).events) == r.events, f"{r.label}: manifest and file disagree"
    # A scenario added later may need features the previous release lacks.
    assert PREVIOUS_CORE <= by_release.get(PREVIOUS_RELEASE, set()) <= scenarios
    for older in OLDER_RELEASES:
        assert OLDEST_CORE <= by_release.get(older, set()) <= scenarios
    assert by_release.get("current") == scenarios
    assert {r.workflow_type for r in CORPUS} == {"baton.Flow", "histories.HandwrittenQuality"}
    # A history that no manifest lists would never be replayed.
    files = {
        p for p in (ROOT / "tests" / "histories").glob("*/*.json") if p.name != "manifest.json"
    }
    assert files == {r.path for r in CORPUS}


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
    failures = await replay(recorded, replayer([workflow]))
    return {r.label: failures.get(r.label) for r in recorded}


def _flows(*scenarios: str) -> list[Recorded]:
    return [r for r in FLOWS if r.scenario in scenarios]


# The recorded runs each alteration must break. Reversing the list changes nothing where
# one step at a time is ready (a chain).
ALTERATIONS = {
    "extra activity": (altered.ExtraActivity, altered.ExtraActivityPatched, STEPPED_FLOWS),
    "missing activity": (altered.MissingActivity, altered.MissingActivityPatched, STEPPED_FLOWS),
    "reordered activities": (
        altered.ReorderedActivities,
        altered.ReorderedActivitiesPatched,
        _flows(
            "seed_quality",
            "quorum_slow_model",
            "quorum_failed_model",
            "cascade",
            "local_steps",
            "max_concurrency",
            "large_payload",
        ),
    ),
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
async def test_a_change_of_commands_without_a_patch_fails_replay(alteration: str) -> None:
    plain, _, recorded = ALTERATIONS[alteration]
    assert {PREVIOUS_RELEASE, "current"} <= {r.release for r in recorded}
    failures = await _replay_with(plain, recorded)
    replayed = [label for label, failure in failures.items() if failure is None]
    assert not replayed, f"{alteration}: these histories replayed although commands changed"
    for label, failure in failures.items():
        assert isinstance(failure, NondeterminismError | StepOrderChanged), f"{label}: {failure!r}"


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
async def test_the_same_change_behind_workflow_patched_replays(alteration: str) -> None:
    _, patched, _ = ALTERATIONS[alteration]
    failures = await _replay_with(patched, FLOWS)
    assert not {k: v for k, v in failures.items() if v is not None}


async def test_swapped_fan_out_steps_are_caught_although_temporal_sees_no_change() -> None:
    # Temporal compares activity types and ids, not inputs: reversed, the three `assess`
    # steps of the seed fan-out replay "cleanly" and each gets another model's result.
    recorded = _flows("seed_quality")
    plain = Replayer(workflows=[altered.ReorderedActivities])
    for r in recorded:
        result = await plain.replay_workflow(load(r), raise_on_replay_failure=False)
        assert result.replay_failure is None
    failures = await _replay_with(altered.ReorderedActivities, recorded)
    for label, failure in failures.items():
        assert isinstance(failure, StepOrderChanged), label
        assert "'assess_gpt_4o'" in str(failure) and "'assess_sonnet_4'" in str(failure)
