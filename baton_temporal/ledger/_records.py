"""What the ledger stores and answers: usage records in, totals and stats out.

Example::

    records = UsageRecord.for_attempt([LLMUsage(model="gpt-4o", input_tokens=9)],
                                      workflow_id="wf", run_id="r", workflow_name="flow",
                                      step="s", activity_id="1", attempt=1)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..usage import MAX_TOKENS, LLMUsage

__all__ = [
    "CallIntent",
    "DebugLogEntry",
    "ModelCost",
    "PruneResult",
    "ReconcileResult",
    "RepriceResult",
    "StepStats",
    "UsageRecord",
    "WorkflowTotals",
]


# Why a call's reply is lost, as its lost_reply row says (price_note). Every one: the
# request was sent (a provider bills a request it received, even if the client is gone),
# whether it reached the provider is not known, input is estimated, output unknown.
_LOST_TAIL = (
    "; billed if the request reached the provider (not known); input tokens estimated "
    "from the prompt size, output unknown"
)
LOST_WORKER_STOPPED = (
    "lost reply: the step attempt ended (worker stopped or attempt timed out) after the "
    "request was sent, before its reply was recorded" + _LOST_TAIL
)
LOST_CANCELLED = (
    "lost reply: the step attempt was cancelled while waiting for the reply" + _LOST_TAIL
)
LOST_NO_ANSWER = (
    "lost reply: the request was sent and no reply came back (client timeout, or the "
    "connection broke after sending)" + _LOST_TAIL
)
LOST_RUN_ENDED = (
    "lost reply: the run ended with this call's reply unrecorded (found by baton db "
    "reconcile)" + _LOST_TAIL
)


class _StepCall(BaseModel):
    """Where a call was made: the run, the step attempt and the call's place in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    workflow_name: str = ""
    step: str = Field(min_length=1)
    activity_id: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    # Position of this call in the attempt's list of usages: the call's identity when
    # the usage has no call_id of its own.
    call_index: int = Field(default=0, ge=0)


class UsageRecord(_StepCall):
    """One LLM call of one step attempt, ready to be written to the ledger.

    Frozen and JSON-serialisable (``model_dump(mode="json")`` / ``model_validate``), so
    it can cross Temporal's wire as an activity argument and be written later, by
    another process, with the same idempotency key.

    Example::

        records = UsageRecord.for_attempt(
            usages, workflow_id=info.workflow_id, run_id=info.workflow_run_id,
            workflow_name=info.workflow_type, step="summarize",
            activity_id=info.activity_id, attempt=info.attempt,
        )
    """

    usage: LLMUsage
    # "step_failed": the attempt raised after the call was made; the call still cost money.
    status: Literal["ok", "step_failed"] = "ok"
    # Set when the record is made, not when it is written: a record retried an hour
    # later (ledger outage) keeps the time of the call.
    recorded_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def call_key(self) -> str:
        """The idempotency key: workflow, run, activity, attempt and call id (or index)."""
        return call_key(
            self.workflow_id,
            self.run_id,
            self.activity_id,
            self.attempt,
            call_id=self.usage.call_id,
            call_index=self.call_index,
        )

    @classmethod
    def for_attempt(
        cls,
        usages: Iterable[LLMUsage],
        *,
        workflow_id: str,
        run_id: str,
        workflow_name: str,
        step: str,
        activity_id: str,
        attempt: int,
        status: Literal["ok", "step_failed"] = "ok",
        recorded_at: datetime | None = None,
    ) -> list[UsageRecord]:
        """Records of all LLM calls of one step attempt, numbered in order."""
        at = recorded_at or datetime.now(UTC)
        return [
            cls(
                workflow_id=workflow_id,
                run_id=run_id,
                workflow_name=workflow_name,
                step=step,
                activity_id=activity_id,
                attempt=attempt,
                call_index=i,
                usage=usage,
                status=status,
                recorded_at=at,
            )
            for i, usage in enumerate(usages)
        ]


def call_key(
    workflow_id: str,
    run_id: str,
    activity_id: str,
    attempt: int,
    *,
    call_id: str | None,
    call_index: int = 0,
) -> str:
    """sha256 of where a call happened and its id (or, lacking one, its index)."""
    call = ["id", call_id] if call_id is not None else ["index", call_index]
    parts = [workflow_id, run_id, activity_id, attempt, *call]
    # JSON keeps the parts apart (no separator can be faked by an id containing it).
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class CallIntent(_StepCall):
    """A call about to be sent: written before the request leaves, completed by its usage.

    If the worker dies between the request and the ledger write, the intent is what is
    left: :meth:`LedgerStore.reconcile` turns it into a ``lost_reply`` row, so the call is
    counted though its reply never arrived.

    Example::

        intent = CallIntent(workflow_id="wf", run_id="r", step="s", activity_id="1",
                            attempt=1, call_id="s/1/0", model="gpt-4o", prompt_chars=1200)
    """

    call_id: str = Field(min_length=1, max_length=256)
    model: str = Field(min_length=1, max_length=256)
    provider: str | None = None
    prompt_chars: int = Field(default=0, ge=0)
    requested_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def call_key(self) -> str:
        """The key the call's usage record will have (same workflow, attempt and id)."""
        return call_key(
            self.workflow_id, self.run_id, self.activity_id, self.attempt, call_id=self.call_id
        )

    @property
    def estimated_input_tokens(self) -> int:
        """~4 characters a token: what a lost reply's input is counted as (at most
        ``MAX_TOKENS``: a prompt no provider accepts must not fail the intent's write)."""
        return min(estimate_tokens(self.prompt_chars), MAX_TOKENS)


def estimate_tokens(chars: int) -> int:
    """Input tokens of a prompt of ``chars`` characters, estimated (~4 per token)."""
    return (chars + 3) // 4


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WorkflowTotals(_Frozen):
    """Everything one workflow (all its runs) used. ``cost_usd`` sums the priced calls."""

    workflow_id: str
    calls: int = 0
    attempts: int = 0  # distinct step attempts that made LLM calls
    steps: int = 0  # distinct steps that made LLM calls
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0  # calls whose cost is unknown: not in cost_usd
    failed_calls: int = 0  # calls made by attempts that then failed
    # Calls whose worker died before the reply was recorded: input estimated, output
    # unknown, unpriced (also counted in unpriced_calls).
    lost_replies: int = 0
    pending_calls: int = 0  # requests sent, reply not yet recorded (in flight or orphaned)
    web_search_requests: int = 0
    # Billed replies whose token counts are not known (no usage block, or counts that
    # cannot be true): zero tokens here, unpriced (also counted in unpriced_calls).
    usage_unknown_calls: int = 0


class StepStats(_Frozen):
    """Usage of one step with one model. ``cost_usd`` is None when no call was priced."""

    step: str
    model: str
    calls: int
    attempts: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int
    failed_calls: int
    avg_latency_ms: int | None
    lost_replies: int = 0
    pending_calls: int = 0
    usage_unknown_calls: int = 0
    first_recorded_at: datetime
    last_recorded_at: datetime


class ModelCost(_Frozen):
    """Usage of one model over a time range. ``cost_usd`` is None when nothing was priced."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int


class ReconcileResult(_Frozen):
    """What :meth:`LedgerStore.reconcile` did: orphaned intents turned into lost replies."""

    lost_replies: int
    # Intents of runs still going (their calls may yet complete): left alone.
    still_running: int = 0
    # Runs Temporal did not find (another namespace, or past retention): left alone,
    # since "not found" does not say "ended".
    not_found: int = 0


class RepriceResult(_Frozen):
    """What :meth:`LedgerStore.reprice` did."""

    rows: int  # rows looked at
    changed: int  # rows whose cost, price model or version changed
    priced: int  # of the rows looked at, priced now
    unpriced: int  # of the rows looked at, still unpriced
    price_version: str | None  # the price data used (of the last priced row)


class PruneResult(_Frozen):
    """How many rows :meth:`LedgerStore.prune` deleted."""

    stats_rows: int
    debug_rows: int


class DebugLogEntry(_Frozen):
    """One saved request/response pair."""

    id: int
    workflow_id: str
    run_id: str
    step: str
    attempt: int
    call_id: str | None
    model: str | None
    request: Any
    response: Any
    created_at: datetime
