"""Replay the recorded corpus against the current workflow code.

    python -m tests.histories.replay            # every history under tests/histories/
    python -m tests.histories.replay 527f01c    # one release's corpus

Prints one line per history and exits non-zero if any fails to replay (nondeterminism:
the current code issues other commands than the recorded run did). The workflows are
set up as a worker sets them up: through ``BatonPlugin`` (the generic flow workflow
unsandboxed, hand-written ones in the sandbox with baton's pass-through modules).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

HERE = Path(__file__).resolve().parent

__all__ = ["Recorded", "corpus", "load", "replay", "replayer"]


@dataclass(frozen=True)
class Recorded:
    """One recorded history and what its manifest says about it."""

    release: str
    scenario: str
    path: Path
    workflow_type: str
    workflow_id: str
    events: int

    @property
    def label(self) -> str:
        return f"{self.release}/{self.scenario}"


def corpus(releases: Iterable[str] = (), root: Path = HERE) -> list[Recorded]:
    """Every history listed in ``<root>/<release>/manifest.json`` (all releases by default)."""
    wanted = set(releases)
    out: list[Recorded] = []
    for manifest in sorted(root.glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        if wanted and data["release"] not in wanted:
            continue
        for entry in data["histories"]:
            out.append(
                Recorded(
                    release=data["release"],
                    scenario=entry["scenario"],
                    path=manifest.parent / entry["file"],
                    workflow_type=entry["workflow_type"],
                    workflow_id=entry["workflow_id"],
                    events=entry["events"],
                )
            )
    return out


def load(recorded: Recorded) -> WorkflowHistory:
    return WorkflowHistory.from_json(recorded.workflow_id, recorded.path.read_text())


def replayer(**kwargs: Any) -> Replayer:
    """A Replayer set up as a baton worker is: the plugin's workflows, runner, converter."""
    import baton_temporal as baton

    from . import steps, workflows

    plugin = baton.BatonPlugin(steps=steps.STEPS, ledger=False)
    return Replayer(workflows=[workflows.HandwrittenQuality], plugins=[plugin], **kwargs)


async def replay(
    recorded: Sequence[Recorded], runner: Replayer | None = None
) -> dict[str, BaseException]:
    """Replay ``recorded``; return ``{label: failure}`` for those that did not replay."""
    runner = runner or replayer()
    failures: dict[str, BaseException] = {}
    for r in recorded:
        result = await runner.replay_workflow(load(r), raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[r.label] = result.replay_failure
    return failures


def main(argv: list[str]) -> int:
    recorded = corpus(argv)
    if not recorded:
        print(f"no recorded histories under {HERE} for {argv or 'any release'}")
        return 2
    failures = asyncio.run(replay(recorded))
    for r in recorded:
        failure = failures.get(r.label)
        status = "ok" if failure is None else f"FAILED: {type(failure).__name__}: {failure}"
        print(f"{r.label:<40} {r.events:>5} events  {status}")
    print(f"replayed {len(recorded)} histories, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
