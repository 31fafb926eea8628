"""How the generic flow workflow reads its input, so that every run ends.

A run's input can come from anywhere: ``Flow.start``, a JSON file, ``temporal workflow
start --input`` typed by hand, another SDK. Whatever it holds, the run either starts its
steps or FAILS at once with an ``InvalidFlow`` error that names the problem and the fix.
It never fails its workflow task instead: Temporal retries a failed task for ever, and
the run would sit RUNNING with nothing to show.

The input arrives as a raw payload (see ``FlowWorkflow.run``) and is decoded here, where
a payload that cannot be decoded (JSON nested thousands deep, an integer of 5,000 digits,
no input at all) is caught like any other bad input.

Example::

    flow_input = read_flow_input(raw)   # in FlowWorkflow.run
    flow_input.spec.steps, flow_input.options["parse"]
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import FailureError

from ..flow._errors import FlowError
from ..flow._limits import MAX_JSON_DEPTH
from ..flow._options import DEFAULT_RETRY, LEGACY_RETRY_BASE, StepOptions
from ..flow._spec import FLOW_WORKFLOW_TYPE, BoolNumberError, FlowSpec, StepSpec, parse_flow
from ._continue import Carry, EncodedFlow, split_input
from ._versioning import (
    BOOL_NUMBERS_REFUSED,
    FLOW_ERRORS_FAIL_RUN,
    RETRY_MERGES_OVER_DEFAULTS,
    STRICT_FLOW_INPUT,
)
from ._wire import FLOW_INTERNAL_ERROR, invalid

__all__ = [
    "FLOW_FAILURE_EXCEPTION_TYPES",
    "NO_INPUT",
    "FlowInput",
    "fail_run_on",
    "one_input_signature",
    "read_flow_input",
]

NO_INPUT = RawValue(Payload())
"""The run argument's default: ``temporal workflow start`` without ``--input``."""


# Exceptions that fail the run rather than its workflow task when they escape the
# workflow's code (the parameter of @workflow.defn). These are what Python and the SDK's
# payload decoding raise for bad data: with two or more inputs the SDK decodes them
# itself, and calls run() with too many arguments (TypeError). NondeterminismError (a
# TemporalError) is deliberately not among them: code that no longer matches a run's
# history fails its task, so that deploying the right code rescues the run.
class _IsUndecodableInput(type):
    # The SDK reports inputs it could not decode (it decodes them itself when a run gets
    # two or more) as a plain RuntimeError with this message. RuntimeError as a whole
    # stays a task failure: the SDK raises it for its own bugs and history mismatches too.
    def __instancecheck__(cls, err: Any) -> bool:
        return type(err) is RuntimeError and str(err) == "Failed decoding arguments"


class UndecodableInput(Exception, metaclass=_IsUndecodableInput):
    """Matches the SDK's error for run inputs it cannot decode (see the metaclass)."""


FLOW_FAILURE_EXCEPTION_TYPES: tuple[type[BaseException], ...] = (
    FlowError,
    TypeError,
    ValueError,
    LookupError,
    ArithmeticError,
    RecursionError,
    UndecodableInput,
)

_RETRY_FIELDS = ("initial_interval", "backoff_coefficient", "maximum_interval", "maximum_attempts")
_START_HINT = (
    f"start it with the flow JSON as its one input, e.g. `temporal workflow start --type "
    f'{FLOW_WORKFLOW_TYPE} --task-queue baton --input "$(cat flow.json)"` (write the JSON '
    "with Flow.to_json()), or use Flow.start()"
)


@dataclass(frozen=True)
class FlowInput:
    """A checked flow, and each step's options built from it."""

    spec: FlowSpec
    options: dict[str, StepOptions]
    carry: Carry = field(default_factory=lambda: Carry(flow=None))
    """What an earlier run of this flow handed over at continue-as-new (_continue.py)."""


def read_flow_input(raw: Any, more: Sequence[Any] = ()) -> FlowInput:
    """The run's input as a checked flow; raises ``ApplicationError(InvalidFlow)``."""
    try:
        if more:
            raise ValueError(
                f"{FLOW_WORKFLOW_TYPE} takes one input, the flow JSON, but was given "
                f"{1 + len(more)}; {_START_HINT}"
            )
        # A run continued as new gets the flow back with the states so far.
        data = _decode(raw)
        carry = split_input(data)
        try:
            spec = parse_flow(carry.flow)
        except BoolNumberError as err:
            # A continuation goes on as its first run read the flow: only a run started
            # afresh since this release refuses it. A run started with a carry-shaped input
            # (forged: only this workflow writes one) is started afresh too: Temporal sets
            # continued_run_id only on a run it continued (or retried).
            fresh = carry.flow is data or workflow.info().continued_run_id is None
            if fresh and workflow.patched(BOOL_NUMBERS_REFUSED):
                raise invalid(str(err)) from None
            # Replaying a run started before this release: true was read as 1 then.
            spec = parse_flow(carry.flow, bools_as_numbers=True)
        carry.check([s.name for s in spec.steps])
        if carry.flow is data and isinstance(raw, RawValue):
            carry.flow = EncodedFlow(raw)  # not kept decoded beside the spec (see there)
    except ValueError as err:
        if workflow.patched(STRICT_FLOW_INPUT):
            raise invalid(str(err)) from None
        # Replaying a run started before this release: read it as that release did.
        spec = _legacy_parse(raw)
        return FlowInput(spec, _options(spec, legacy=True))
    try:
        return FlowInput(spec, _options(spec, legacy=False), carry)
    except ValueError as err:
        raise invalid(str(err)) from None


def one_input_signature(run: Callable[..., Any]) -> inspect.Signature:
    """``run``'s signature without its ``*args`` parameter (see ``FlowWorkflow.run``)."""
    signature = inspect.signature(run)
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_POSITIONAL]
    return signature.replace(parameters=kept)


def _decode(raw: Any) -> Any:
    if raw is NO_INPUT:
        raise ValueError(f"{FLOW_WORKFLOW_TYPE} was started without an input; {_START_HINT}")
    if not isinstance(raw, RawValue):  # not through the SDK's converter: already decoded
        return raw
    try:
        return workflow.payload_converter().from_payload(raw.payload)
    except Exception as err:  # whatever the converter raises for bytes it cannot read
        root = _root_cause(err)
        if isinstance(root, RecursionError):
            raise ValueError(
                f"the flow JSON nests too deeply to read; step args may nest at most "
                f"{MAX_JSON_DEPTH} levels: flatten them (or pass deep data as a JSON string)"
            ) from None
        raise ValueError(
            f"the input cannot be read as JSON ({type(root).__name__}: {root}); {_START_HINT}"
        ) from None


def _root_cause(err: BaseException) -> BaseException:
    for _ in range(20):  # the converter wraps the decoder's error; a bounded walk down
        if err.__cause__ is None:
            break
        err = err.__cause__
    return err


def _legacy_parse(raw: Any) -> FlowSpec:
    try:
        data = raw
        if isinstance(raw, RawValue):
            data = workflow.payload_converter().from_payload(raw.payload)
        return parse_flow(data, legacy=True)
    except ValueError as err:
        raise invalid(str(err)) from None


def _options(spec: FlowSpec, *, legacy: bool) -> dict[str, StepOptions]:
    base = DEFAULT_RETRY
    if any(_partial_retry(s) for s in spec.steps) and (
        legacy or not workflow.patched(RETRY_MERGES_OVER_DEFAULTS)
    ):
        # Before this release a partial retry spec filled its gaps with Temporal's
        # defaults (no attempt limit); runs started then keep that.
        base = LEGACY_RETRY_BASE
    options: dict[str, StepOptions] = {}
    for s in spec.steps:
        try:
            options[s.name] = StepOptions.from_json(s.options, retry_defaults=base, legacy=legacy)
        except ValueError as err:
            raise ValueError(f"invalid flow: step {s.name!r}: {err}") from None
    return options


def _partial_retry(step: StepSpec) -> bool:
    retry = step.options.get("retry")
    return isinstance(retry, dict) and any(f not in retry for f in _RETRY_FIELDS)


def fail_run_on(err: Exception) -> BaseException:
    """What to raise for ``err`` escaping the flow workflow's own code.

    Temporal's failures (a step's ``ActivityError``, the flow's own ``ApplicationError``)
    and ``NondeterminismError`` pass as they are; anything else is a bug or an unchecked
    input, and fails the run with a message instead of failing its task for ever.
    """
    if isinstance(err, FailureError | workflow.NondeterminismError | asyncio.CancelledError):
        return err
    if not workflow.patched(FLOW_ERRORS_FAIL_RUN):
        return err  # a run recorded before this release: as that release did
    return invalid(
        f"{FLOW_WORKFLOW_TYPE} failed in its own code with {type(err).__name__}: {err}. "
        "This is a baton-temporal bug or an input it does not check yet: report it with "
        "the flow JSON, then start the flow again",
        type=FLOW_INTERNAL_ERROR,
    )
