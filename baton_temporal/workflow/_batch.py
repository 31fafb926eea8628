"""Durable batch fan-outs in workflow code: a step's LLM calls through the providers'
batch APIs (Anthropic Message Batches, OpenAI Batch), at the batch price.

How a batch step runs (each box is a short activity; the waits are Temporal timers)::

    prepare   the step runs with no replies: each call_llm records its request and the
              step stops (it returns the requests instead of a result)
    pool      requests of every batch step of this run that prepared meanwhile are
              pooled, one provider batch each (custom_id -> step and call)
    submit    baton.batch_submit, idempotent by a deterministic batch key
    wait      baton.batch_poll, then workflow.sleep (backoff to max_poll_interval)
    fetch     baton.batch_fetch: the results, one ledger row per billed request
    finish    the step runs again with the replies: call_llm returns them in order;
              a further call goes to the next round (another batch)

A request that failed at the provider fails its step only (with the provider's error,
raised by that call_llm); the fan-out's quorum rule then applies as for any failed step.
A worker or server restart at any point resumes where the history says.

Example (hand-written workflow)::

    by_model = await multi_model.run_fan_out(
        assess, base="assess", models=["claude-sonnet-4-20250514", "gpt-4o"],
        args={"text": text}, batch=True)
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from ..flow._names import fan_out_names, with_model
from ..flow._options import StepOptions, StepRef
from ._outcomes import FAN_OUT_FAILED_ERROR, answers_by_model
from ._runtime import execute_step
from ._wire import RECORD_USAGE_ACTIVITY, StepOutput, invalid

__all__ = [
    "BATCH_ARG",
    "BATCH_FAILED_ERROR",
    "BatchGroup",
    "BatchOptions",
    "batch_options_of",
    "run_batch_fan_out",
]

# The reserved arg that carries a batch step's replies in, and the reserved result key
# that carries its requests out (steps never see it: the step wrapper takes it away).
BATCH_ARG = "baton_batch"
SUBMIT_ACTIVITY = "baton.batch_submit"
POLL_ACTIVITY = "baton.batch_poll"
FETCH_ACTIVITY = "baton.batch_fetch"
CANCEL_ACTIVITY = "baton.batch_cancel"
# A request the provider did not answer (errored, expired, cancelled, missing).
BATCH_FAILED_ERROR = "BatchRequestFailed"
BATCH_UNSUPPORTED_ERROR = "BatchUnsupported"
# Models of servers without a batch API (llm/_providers.py's explicit prefix).
NO_BATCH_API_PREFIX = "openai-compatible:"
# One submission's requests, as JSON: kept well under Temporal's 2 MB payload limit even
# without a payload store (with one, payloads over 256 KiB leave history anyway); a
# bigger pool is sent as several provider batches.
MAX_SUBMIT_BYTES = 1_000_000
# One fetch activity's replies, as JSON (then the next page is fetched).
MAX_FETCH_BYTES = 1_000_000
# Providers' own ceilings are 100,000 (Anthropic) and 50,000 (OpenAI) requests.
MAX_SUBMIT_REQUESTS = 10_000
# Polls after a cancel that the provider has not finished yet: then the batch is given up.
_POLLS_AFTER_CANCEL = 30
_FAN_OUT_MODE = "mode"
_BATCH_MODE = "batch"

_ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)


@dataclass(frozen=True)
class BatchOptions:
    """How a batch fan-out waits.

    ``poll_interval``: the first wait between two polls, doubled after each poll up to
    ``max_poll_interval``. ``max_wait``: after this long the batch is cancelled at the
    provider and its unanswered requests fail (providers expire batches after 24 h
    anyway). Tests use seconds; production keeps the defaults.

    Example::

        flow.pipe(multi_model.fan_out, "assess", assess, models=MODELS,
                  batch=BatchOptions(poll_interval=timedelta(seconds=1)))
    """

    poll_interval: timedelta = timedelta(seconds=30)
    max_poll_interval: timedelta = timedelta(minutes=5)
    max_wait: timedelta = timedelta(hours=25)

    def __post_init__(self) -> None:
        for key in ("poll_interval", "max_poll_interval", "max_wait"):
            value = getattr(self, key)
            if not isinstance(value, timedelta) or value.total_seconds() <= 0:
                raise ValueError(
                    f"BatchOptions.{key} is {value!r}; use a positive datetime.timedelta, "
                    "e.g. timedelta(seconds=30)"
                )
        if self.max_poll_interval < self.poll_interval:
            raise ValueError(
                f"BatchOptions.max_poll_interval ({self.max_poll_interval}) is below "
                f"poll_interval ({self.poll_interval}); make it at least as long"
            )

    def to_fan_out(self) -> dict[str, str]:
        """The options as a fan-out step's ``fan_out`` entries (strings, as flows hold)."""
        return {
            _FAN_OUT_MODE: _BATCH_MODE,
            "poll_seconds": _seconds(self.poll_interval),
            "max_poll_seconds": _seconds(self.max_poll_interval),
            "max_wait_seconds": _seconds(self.max_wait),
        }

    @classmethod
    def from_fan_out(cls, entries: Mapping[str, str]) -> BatchOptions:
        """The options a ``fan_out`` entry holds; a bad value is a ValueError naming it."""
        values: dict[str, timedelta] = {}
        for key, name in (
            ("poll_interval", "poll_seconds"),
            ("max_poll_interval", "max_poll_seconds"),
            ("max_wait", "max_wait_seconds"),
        ):
            raw = entries.get(name)
            if raw is None:
                continue
            try:
                values[key] = timedelta(seconds=float(raw))
            except (TypeError, ValueError, OverflowError):
                raise ValueError(
                    f"fan_out {name} is {raw!r}; use a number of seconds such as '30'"
                ) from None
        return cls(**values)


def _seconds(value: timedelta) -> str:
    return repr(value.total_seconds())


def batch_options_of(fan_out: Mapping[str, str] | None) -> BatchOptions | None:
    """The batch options of a flow node's ``fan_out`` entry; None for a normal step."""
    if not fan_out or fan_out.get(_FAN_OUT_MODE) != _BATCH_MODE:
        return None
    try:
        return BatchOptions.from_fan_out(fan_out)
    except ValueError as err:
        # A hand-edited flow file: the run fails, saying what to fix (never a task retry).
        raise invalid(f"invalid flow: {err} (in the fan_out entry of a batch step)") from None


def deferred_requests(result: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The requests a batch step's prepare run returned, or None for a real result."""
    if len(result) != 1 or BATCH_ARG not in result:
        return None
    body = result[BATCH_ARG]
    requests = body.get("requests") if isinstance(body, Mapping) else None
    return list(requests) if isinstance(requests, list) and requests else None


@dataclass
class _Pending:
    step: str
    request: dict[str, Any]
    options: BatchOptions
    future: asyncio.Future[dict[str, Any]]


@dataclass
class BatchGroup:
    """The batch steps of one workflow run: pools their requests into provider batches.

    One per run (the flow workflow holds one; :func:`run_batch_fan_out` makes one per
    call). Requests are pooled until no batch step of the group is inside an activity,
    so the steps that became ready together share one provider batch.
    """

    _busy: int = 0
    _pool: list[_Pending] = field(default_factory=list)
    _flusher: asyncio.Future[None] | None = None
    _seq: int = 0
    # Submissions one at a time: each in its own workflow task, so that several large
    # ones never add up past Temporal's 4 MB cap on one task's commands.
    _submitting: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def execute(
        self,
        step: StepRef | str,
        args: Mapping[str, Any] | None = None,
        *,
        batch: BatchOptions,
        name: str | None = None,
        **step_options: Any,
    ) -> StepOutput:
        """:func:`execute_step` with the step's LLM calls sent through batch APIs;
        ``step_options`` are :func:`execute_step`'s (results, options, budget...)."""
        replies: list[dict[str, Any]] = []
        step_name = name or (step.name if isinstance(step, StepRef) else step)
        while True:
            self._busy += 1
            try:
                output = await execute_step(
                    step,
                    {**(args or {}), BATCH_ARG: {"replies": replies}},
                    name=step_name,
                    **step_options,
                )
            finally:
                self._busy -= 1
            requests = deferred_requests(output.result)
            if requests is None:
                return output
            # Each round adds at least one reply; the step wrapper bounds the calls.
            futures = [self._add(step_name, r, batch) for r in requests]
            replies = replies + list(await asyncio.gather(*futures))

    def _add(
        self, step: str, request: dict[str, Any], options: BatchOptions
    ) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pool.append(_Pending(step, request, options, future))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return future

    async def _flush(self) -> None:
        await workflow.wait_condition(lambda: self._busy == 0)
        pool, self._pool, self._flusher = self._pool, [], None
        by_provider: dict[str, list[_Pending]] = {}
        for item in pool:
            by_provider.setdefault(str(item.request.get("provider")), []).append(item)
        runs = [
            self._run_batch(provider, chunk)
            for provider, items in by_provider.items()
            for chunk in _chunks(items)
        ]
        await asyncio.gather(*runs)

    async def _run_batch(self, provider: str, items: list[_Pending]) -> None:
        self._seq += 1
        info = workflow.info()
        key = f"baton-{info.run_id}-{self._seq}"
        ids = [_custom_id(i, item.step) for i, item in enumerate(items)]
        options = items[0].options
        for item in items[1:]:
            options = _tightest(options, item.options)
        try:
            replies = await self._submit_and_wait(provider, key, ids, items, options)
        except ActivityError as err:
            message = f"the {provider} batch {key} could not be run: {err.cause or err}"
            replies = {cid: _error_reply("BatchFailed", message) for cid in ids}
        for cid, item in zip(ids, items, strict=True):
            reply = replies.get(cid) or _error_reply(
                "BatchResultMissing",
                f"the {provider} batch {key} returned no result for request {cid} "
                f"(step {item.step!r}); the step can be run again without batch",
            )
            if not item.future.done():  # a quorum straggler may have been cancelled
                # What was asked, so the step can check it asks the same when run again.
                asked = {k: item.request.get(k) for k in ("model", "digest")}
                item.future.set_result({**reply, **asked})

    async def _submit(
        self, provider: str, key: str, ids: list[str], items: list[_Pending], workflow_id: str
    ) -> dict[str, Any]:
        submitted: dict[str, Any] = await workflow.execute_activity(
            SUBMIT_ACTIVITY,
            {
                "provider": provider,
                "key": key,
                "workflow_id": workflow_id[:200],
                "requests": [
                    {"custom_id": cid, "body": item.request.get("body")}
                    for cid, item in zip(ids, items, strict=True)
                ],
            },
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=_ACTIVITY_RETRY,
            summary=f"submit a {provider} batch of {len(items)} requests",
        )
        return submitted

    async def _submit_and_wait(
        self,
        provider: str,
        key: str,
        ids: list[str],
        items: list[_Pending],
        options: BatchOptions,
    ) -> dict[str, dict[str, Any]]:
        info = workflow.info()
        async with self._submitting:
            submitted = await self._submit(provider, key, ids, items, info.workflow_id)
        batch_id = submitted["batch_id"]
        handle = {"provider": provider, "batch_id": batch_id}
        deadline = workflow.now() + options.max_wait
        wait = options.poll_interval
        polls_after_cancel: int | None = None
        while True:
            status = await workflow.execute_activity(
                POLL_ACTIVITY,
                handle,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_ACTIVITY_RETRY,
                summary=f"poll {provider} batch {batch_id}",
            )
            if status.get("ended"):
                break
            if polls_after_cancel is None and workflow.now() >= deadline:
                await workflow.execute_activity(
                    CANCEL_ACTIVITY,
                    handle,
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=_ACTIVITY_RETRY,
                    summary=f"cancel {provider} batch {batch_id} (max_wait passed)",
                )
                polls_after_cancel = 0
            if polls_after_cancel is not None:
                polls_after_cancel += 1
                if polls_after_cancel > _POLLS_AFTER_CANCEL:
                    message = (
                        f"the {provider} batch {batch_id} did not end within max_wait "
                        f"({options.max_wait}) nor after it was cancelled"
                    )
                    return {cid: _error_reply("BatchTimedOut", message) for cid in ids}
            await workflow.sleep(wait)
            wait = min(wait * 2, options.max_poll_interval)
        requests = [
            {"custom_id": cid, "step": item.step, "model": item.request.get("model")}
            for cid, item in zip(ids, items, strict=True)
        ]
        replies: dict[str, dict[str, Any]] = {}
        page: int | None = 0
        # In pages of about MAX_FETCH_BYTES of replies: long answers would otherwise make
        # one activity result over Temporal's 2 MB payload limit.
        while page is not None:
            fetched = await workflow.execute_activity(
                FETCH_ACTIVITY,
                {
                    **handle,
                    "key": key,
                    "workflow_name": info.workflow_type,
                    "requests": requests,
                    "start": page,
                    "max_bytes": MAX_FETCH_BYTES,
                },
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=_ACTIVITY_RETRY,
                summary=f"fetch results of {provider} batch {batch_id}",
            )
            pending = fetched.get("pending_usage") or []
            if pending:
                # The ledger was down: the rows wait in history until it is back.
                await workflow.execute_activity(
                    RECORD_USAGE_ACTIVITY,
                    pending,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=30),
                        maximum_attempts=0,
                    ),
                    summary=f"record usage of {provider} batch {batch_id}",
                )
            replies.update(fetched.get("replies") or {})
            following = fetched.get("next")
            page = following if isinstance(following, int) and following > page else None
        return replies


def _tightest(a: BatchOptions, b: BatchOptions) -> BatchOptions:
    """The options of a pooled batch: the shortest waits its steps asked for."""
    return BatchOptions(
        poll_interval=min(a.poll_interval, b.poll_interval),
        max_poll_interval=min(a.max_poll_interval, b.max_poll_interval),
        max_wait=min(a.max_wait, b.max_wait),
    )


def _chunks(items: list[_Pending]) -> list[list[_Pending]]:
    """Split a provider's pool into submissions under the payload and count bounds."""
    chunks: list[list[_Pending]] = [[]]
    size = 0
    for item in items:
        cost = _json_size(item.request.get("body")) + 100
        if chunks[-1] and (
            size + cost > MAX_SUBMIT_BYTES or len(chunks[-1]) >= MAX_SUBMIT_REQUESTS
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += cost
    return chunks


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def _custom_id(index: int, step: str) -> str:
    """Unique in its batch, readable, and within both providers' custom_id rules
    (Anthropic: ``^[a-zA-Z0-9_-]{1,64}$``)."""
    return f"{index:05d}-{_UNSAFE.sub('_', step)}"[:64]


def _error_reply(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


async def run_batch_fan_out(
    step: StepRef | str,
    *,
    base: str,
    models: Sequence[str],
    batch: BatchOptions,
    args: Mapping[str, Any] | None = None,
    results: Mapping[str, Any] | None = None,
    quorum: int | None = None,
    names: Mapping[str, str] | None = None,
    options: StepOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`run_fan_out` with ``batch=``: every model's calls in one batch per provider.

    The quorum rule is the same (all models, or ``quorum`` of them, must succeed); since a
    batch's results arrive together there are no stragglers to cancel.
    """

    step_names = fan_out_names(base, models, names)
    unbatchable = [m for m in step_names if m.startswith(NO_BATCH_API_PREFIX)]
    if unbatchable:
        # Before any step runs: its prepare phase would fail the same way, step by step.
        raise ApplicationError(
            f"fan-out {base!r}: {', '.join(unbatchable)} is served by an OpenAI-compatible "
            "server, which has no batch API (only Anthropic and OpenAI have one); drop "
            "batch=True or fan out to Anthropic / OpenAI models only",
            type=BATCH_UNSUPPORTED_ERROR,
            non_retryable=True,
        )
    need = len(step_names) if quorum is None else quorum
    if isinstance(need, bool) or not isinstance(need, int) or not 1 <= need <= len(step_names):
        raise ApplicationError(
            f"fan-out {base!r}: quorum must be a whole number from 1 to {len(step_names)} "
            f"(the number of models), got {quorum!r}",
            type=FAN_OUT_FAILED_ERROR,
            non_retryable=True,
        )
    group = BatchGroup()
    outcomes = await asyncio.gather(
        *(
            group.execute(
                step, with_model(args, m), batch=batch, name=n, results=results, options=options
            )
            for m, n in step_names.items()
        ),
        return_exceptions=True,
    )
    return answers_by_model(base, step_names, outcomes, need, lambda out: out.result)
