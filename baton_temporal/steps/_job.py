"""The job object a step function receives, and the functions that read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..flow._errors import NotADependencyError

__all__ = ["Job", "get_all_results", "get_result"]


@dataclass(frozen=True)
class Job:
    """One execution attempt of one step.

    Example::

        @baton.step
        async def summarize(job: baton.Job) -> dict:
            text = baton.get_result(job, "fetch")["text"]
            model = job.args.get("workflow_model", "claude-sonnet-4-20250514")
            return {"summary": text[:100], "model": model}
    """

    step: str
    """This step's name in its flow (``"assess_gpt_4o"``)."""
    args: Mapping[str, Any]
    """The step's arguments; ``"workflow_model"`` is here when a model map applies."""
    workflow_id: str
    workflow_name: str
    run_id: str = ""
    attempt: int = 1
    """1 on the first try, 2 on the first retry, and so on."""
    results: Mapping[str, Any] = field(default_factory=dict)
    """Results of this step's dependencies, keyed by step name; nothing else."""
    debug: bool = False
    """Whether LLM calls of this step save their full request and response."""

    def __post_init__(self) -> None:
        # Read-only views: a step must not be able to change what its siblings see.
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))
        object.__setattr__(self, "results", MappingProxyType(dict(self.results)))


def get_result(job: Job, step: str) -> Any:
    """The result of dependency ``step``.

    Raises :class:`NotADependencyError` when ``step`` is not one of the job's
    dependencies (or it failed and the job was allowed to run without it).

    Example::

        parsed = baton.get_result(job, "parse")
    """
    try:
        return job.results[step]
    except KeyError:
        have = sorted(job.results)
        raise NotADependencyError(
            f"step {job.step!r} asked for the result of {step!r}, which is not among its "
            f"dependencies' results {have}; add deps=[{step!r}] to {job.step!r} in the flow "
            "(a dependency that failed or was cancelled and was ignored has no result)"
        ) from None


def get_all_results(job: Job) -> dict[str, Any]:
    """Every dependency's result, keyed by step name.

    Example::

        for name, result in baton.get_all_results(job).items():
            ...
    """
    return dict(job.results)
