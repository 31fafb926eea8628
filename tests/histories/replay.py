"""Replay the recorded corpus against the current workflow code.

    python -m tests.histories.replay            # every history under tests/histories/
    python -m tests.histories.replay 527f01c    # one release's corpus
    python -m tests.histories.replay --code ../wt-other   # another checkout's workflow code

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

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

HERE = Path(__file__).resolve().parent

__all__ = ["Recorded", "StepOrderChanged", "corpus", "load", "replay", "replayer"]


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


class StepOrderChanged(Exception):
    """The replayed code scheduled its activities for other steps than the recorded run.

    Temporal's own check compares each scheduled activity's type and id, not its input:
    two fan-out steps of one step function swapped (or a step given another step's
    name) replay "cleanly" and hand each step the other's result. This check compares
    the step names too.
    """


# Steps scheduled by the code under replay, by run id (filled by _StepOrder).
_SCHEDULED: dict[str, list[tuple[str, str | None]]] = {}


def _step_of(arg: Any) -> str | None:
    return arg.get("step") if isinstance(arg, dict) and isinstance(arg.get("step"), str) else None


class _StepOrder(Interceptor):
    """Records (activity type, step name) of every activity the replayed code schedules."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        arg = input.args[0] if input.args else None
        _SCHEDULED.setdefault(workflow.info().run_id, []).append((input.activity, _step_of(arg)))
        return super().start_activity(input)


def recorded_steps(history: WorkflowHistory) -> list[tuple[str, str | None]]:
    """(activity type, step name) of every activity the recorded run scheduled, in order.
    The step name is None where the input is not plain JSON (encrypted, stored outside)."""
    out: list[tuple[str, str | None]] = []
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attrs = event.activity_task_scheduled_event_attributes
        step = None
        payloads = attrs.input.payloads
        if payloads and payloads[0].metadata.get("encoding") == b"json/plain":
            step = _step_of(json.loads(payloads[0].data))
        out.append((attrs.activity_type.name, step))
    return out


def _step_order_change(history: WorkflowHistory) -> StepOrderChanged | None:
    run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
    replayed = _SCHEDULED.pop(run_id, [])
    recorded = recorded_steps(history)
    for i, (was, now) in enumerate(zip(recorded, replayed, strict=False)):
        if was[0] != now[0] or (was[1] is not None and was[1] != now[1]):
            return StepOrderChanged(
                f"activity {i + 1} was scheduled for {was}, the current code schedules {now}"
            )
    if len(recorded) != len(replayed):
        return StepOrderChanged(
            f"the recorded run scheduled {len(recorded)} activities, the replay {len(replayed)}"
        )
    return None


def replayer(workflows: Sequence[type] | None = None, **kwargs: Any) -> Replayer:
    """A Replayer set up as a baton worker is (the plugin's workflows, runner and
    converter), plus the step-order check; or, given ``workflows``, one for just those."""
    if workflows is not None:
        return Replayer(workflows=workflows, interceptors=[_StepOrder()], **kwargs)
    import baton_temporal as baton

    from . import steps
    from .workflows import HandwrittenQuality

    plugin = baton.BatonPlugin(steps=steps.STEPS, ledger=False)
    return Replayer(
        workflows=[HandwrittenQuality], plugins=[plugin], interceptors=[_StepOrder()], **kwargs
    )


async def replay(
    recorded: Sequence[Recorded], runner: Replayer | None = None
) -> dict[str, BaseException]:
    """Replay ``recorded``; return ``{label: failure}`` for those that did not replay:
    Temporal's nondeterminism, or :class:`StepOrderChanged`."""
    runner = runner or replayer()
    failures: dict[str, BaseException] = {}
    for r in recorded:
        history = load(r)
        _SCHEDULED.clear()
        result = await runner.replay_workflow(history, raise_on_replay_failure=False)
        order_change = _step_order_change(history)
        failure = result.replay_failure or order_change
        if failure is not None:
            failures[r.label] = failure
    return failures


def main(argv: list[str]) -> int:
    if argv[:1] == ["--code"]:  # replay against another checkout's baton_temporal
        from .record import _library_of

        sys.path.insert(0, _library_of(Path(argv[1]).resolve()))
        argv = argv[2:]
    recorded = corpus(argv)
    if not recorded:
        print(f"no recorded histories under {HERE} for {argv or 'any release'}")
        return 2
    import baton_temporal

    print(f"workflow code: {Path(baton_temporal.__file__).resolve().parent}")
    failures = asyncio.run(replay(recorded))
    for r in recorded:
        failure = failures.get(r.label)
        status = "ok" if failure is None else f"FAILED: {type(failure).__name__}: {failure}"
        print(f"{r.label:<40} {r.events:>5} events  {status}")
    print(f"replayed {len(recorded)} histories, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
