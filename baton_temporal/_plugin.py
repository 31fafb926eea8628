"""``BatonPlugin``: one object that wires baton-temporal into a Temporal worker."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.plugin import SimplePlugin
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ._dag import FlowWorkflow
from ._errors import StepDefinitionError
from ._step import Step
from ._wire import UNKNOWN_STEP_ERROR

__all__ = ["BatonPlugin"]

# Imported once by the worker and shared with every workflow sandbox instead of being
# re-imported per run: they are heavy, and none keeps state that workflows could see.
PASSTHROUGH_MODULES = (
    "baton_temporal",
    "pydantic",
    "pydantic_core",
    "anthropic",
    "openai",
    "httpx",
    "httpx2",
    "sqlalchemy",
    "genai_prices",
    "yaml",
)


class BatonPlugin(SimplePlugin):
    """Registers the flow workflow, your steps and baton's own activities on a worker.

    Example::

        worker = Worker(client, task_queue="baton",
                        plugins=[baton.BatonPlugin(steps=[parse_doc, assess, report])])

    ``workflows`` adds your hand-written ``@workflow.defn`` classes (they may also be
    passed to ``Worker`` directly).
    """

    def __init__(self, steps: Sequence[Step] = (), *, workflows: Sequence[type] = ()) -> None:
        self.steps = _check_steps(steps)
        activities: list[Any] = [s.activity for s in self.steps]
        activities.append(_unknown_step)
        super().__init__(
            "baton_temporal.BatonPlugin",
            workflows=[FlowWorkflow, *workflows],
            activities=activities,
            workflow_runner=_with_passthrough,
        )


def _check_steps(steps: Sequence[Any]) -> list[Step]:
    if isinstance(steps, Step):
        steps = [steps]
    by_name: dict[str, Step] = {}
    for s in steps:
        if not isinstance(s, Step):
            label = getattr(s, "__qualname__", repr(s))
            raise StepDefinitionError(
                f"BatonPlugin(steps=...) got {label}, which is not a step; decorate it with "
                "@baton.step"
            )
        other = by_name.get(s.name)
        if other is not None and other.fn is not s.fn:
            raise StepDefinitionError(
                f"two different steps are named {s.name!r} ({other.fn.__module__} and "
                f"{s.fn.__module__}); rename one with @baton.step(name=...)"
            )
        by_name[s.name] = s
    return list(by_name.values())


def _with_passthrough(runner: WorkflowRunner | None) -> WorkflowRunner:
    if runner is None:
        runner = SandboxedWorkflowRunner()
    if isinstance(runner, SandboxedWorkflowRunner):
        restrictions = runner.restrictions.with_passthrough_modules(*PASSTHROUGH_MODULES)
        return dataclasses.replace(runner, restrictions=restrictions)
    return runner


@activity.defn(dynamic=True)
async def _unknown_step(args: Sequence[RawValue]) -> Any:
    """Fails, once and for good, a step that no registered activity implements.

    Without it Temporal would retry an unregistered activity forever.
    """
    info = activity.info()
    raise ApplicationError(
        f"no step named {info.activity_type!r} is registered on the workers of task queue "
        f"{info.task_queue!r}; decorate the function with @baton.step and pass it to "
        "BatonPlugin(steps=[...]) on every worker of that queue (or fix the name in the flow)",
        type=UNKNOWN_STEP_ERROR,
        non_retryable=True,
    )
