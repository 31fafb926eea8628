"""Exceptions raised while building or running flows.

Every message names the problem and the fix, because these are the errors a user meets
first: a typo in a step name, a dependency that does not exist, a cycle.
"""

from __future__ import annotations

__all__ = ["FanInError", "FlowError", "NotADependencyError", "StepDefinitionError"]


class FlowError(ValueError):
    """A flow cannot be built or started as declared.

    Raised at build time (``add``, ``validate``, ``to_json``, ``from_json``), before
    anything reaches Temporal.
    """


class StepDefinitionError(TypeError):
    """Something that is not a step was used as one."""


class NotADependencyError(KeyError):
    """A step asked for the result of a step it does not depend on."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0]) if self.args else ""


class FanInError(ValueError):
    """A multi-model helper (``collect_fan_results``, ``median_of``, ``majority_vote``)
    cannot combine the models' results as asked.

    The results it reads are fixed, so no retry can help: a step that raises it fails at
    once (non-retryable ``FanInError``), naming the field or the wiring to fix.
    """
