"""The worker side of batch fan-outs (see workflow/_batch.py for the whole path).

* A batch step runs with ``args["baton_batch"] = {"replies": [...]}``. The step wrapper
  takes that key away (the step never sees it) and sets a :class:`BatchRun`.
* ``call_llm`` then answers its n-th call from the n-th reply. A call with no reply yet
  records its request (the exact body a direct call would send) and stops the step by
  raising :class:`BatchDeferred`, which is not an ``Exception``, so a step's own
  ``except Exception`` cannot swallow it. The step returns its requests to the workflow.
* :class:`BatchActivities` are the short activities the workflow runs: submit (idempotent
  by the batch key), poll, fetch (writes one ledger row per billed request, priced at the
  batch rate), cancel.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..ledger import LedgerError, LedgerWriteError, UsageRecord
from ..llm import LLMResponse, Message
from ..llm._batch import (
    ALL_FAILED,
    BATCH_PROVIDERS,
    BATCH_UNSUPPORTED,
    batch_usage,
    cancel_batch,
    fetch_batch,
    find_batch,
    poll_batch,
    response_from_batch,
    submit_batch,
)
from ..llm._complete import _build_request
from ..llm._config import LLMConfig
from ..llm._errors import map_provider_error
from ..llm._providers import resolve_provider
from ..llm._responses import choose_api
from ..metrics import ledger_counters
from ..workflow._batch import (
    BATCH_ARG,
    CANCEL_ACTIVITY,
    FETCH_ACTIVITY,
    POLL_ACTIVITY,
    SUBMIT_ACTIVITY,
)
from ..workflow._wire import StepInput
from ._job import Job

__all__ = [
    "BatchActivities",
    "BatchDeferred",
    "BatchRun",
    "batch_reply",
    "in_batch_step",
    "start_batch_run",
]

log = logging.getLogger("baton_temporal.batch")

# LLM calls one batch step may make; each call past the replies costs a batch round.
MAX_BATCH_CALLS = 32
_LEDGER_TIMEOUT_S = 10.0
_KEEP_ALIVE_S = 10.0


class BatchDeferred(BaseException):
    """Raised by ``call_llm`` in a batch step whose call has no reply yet."""


@dataclass
class BatchRun:
    """One batch step attempt: the replies it was given and the requests it made."""

    replies: list[dict[str, Any]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def deferred_result(self) -> dict[str, Any]:
        """What the step returns instead of its result: the requests to batch."""
        return {BATCH_ARG: {"requests": self.requests}}


_run: contextvars.ContextVar[BatchRun | None] = contextvars.ContextVar(
    "baton_batch_run", default=None
)


def start_batch_run(input: StepInput) -> tuple[dict[str, Any], BatchRun | None]:
    """The step's args without the batch key, and its :class:`BatchRun` (None if the
    step is not run as a batch step). Sets the run for ``call_llm`` to find."""
    if BATCH_ARG not in input.args:
        return input.args, None
    args = {k: v for k, v in input.args.items() if k != BATCH_ARG}
    spec = input.args[BATCH_ARG]
    replies = spec.get("replies") if isinstance(spec, Mapping) else None
    run = BatchRun(replies=list(replies) if isinstance(replies, list) else [])
    _run.set(run)
    return args, run


def in_batch_step() -> bool:
    """Whether the running step is a batch fan-out step (its calls go through a batch)."""
    return _run.get() is not None


async def batch_reply(
    job: Job, messages: Sequence[Message], model: str, params: Mapping[str, Any]
) -> LLMResponse | None:
    """``call_llm`` in a batch step: the reply for this call; None outside batch steps."""
    run = _run.get()
    if run is None:
        return None
    index = run.calls
    run.calls += 1
    provider, name = resolve_provider(model)
    if provider not in BATCH_PROVIDERS:
        raise ApplicationError(
            f"step {job.step!r} calls {model!r} in a batch fan-out, but {provider} servers "
            "have no batch API (only Anthropic and OpenAI do); drop batch=True for this "
            "fan-out or use an Anthropic or OpenAI model",
            type=BATCH_UNSUPPORTED,
            non_retryable=True,
        )
    # api=, stream= and stall_timeout= say how a direct call travels, not what it asks:
    # they are not request fields, and a batch reply is never streamed. OpenAI batches
    # go to Chat Completions, so a call that must use the Responses API cannot be batched.
    request = dict(params)
    for transport in ("stream", "stall_timeout"):
        request.pop(transport, None)
    if choose_api(provider, name, request.pop("api", None)) == "responses":
        raise ApplicationError(
            f"step {job.step!r} calls {model!r} through the Responses API in a batch "
            "fan-out, but baton's OpenAI batches use the Chat Completions endpoint only: "
            "drop batch=True for this fan-out, or use a model served by Chat Completions "
            "(without api='responses')",
            type=BATCH_UNSUPPORTED,
            non_retryable=True,
        )
    body, _sdk_options = _build_request(provider, name, messages, request)
    digest = hashlib.sha256(
        json.dumps([model, body], sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    if index < len(run.replies):
        reply = run.replies[index]
        if reply.get("digest") not in (None, digest):
            raise ApplicationError(
                f"step {job.step!r} made call {index} (to {model!r}) differently when run "
                f"again than when it was batched (the batch answered a call to "
                f"{reply.get('model')!r}): a batch step must make the same LLM calls, with "
                "the same messages and parameters, in the same order each time it runs (no "
                "randomness or clocks in what it asks)",
                type=BATCH_UNSUPPORTED,
                non_retryable=True,
            )
        return response_from_batch(reply, provider=provider, name=name, request=body)
    if index >= MAX_BATCH_CALLS:
        raise ApplicationError(
            f"step {job.step!r} made more than {MAX_BATCH_CALLS} LLM calls in a batch "
            "fan-out; each call past the batch's replies costs another batch round. Make "
            "fewer calls (or run them concurrently with asyncio.gather: they share a round), "
            "or drop batch=True",
            type=BATCH_UNSUPPORTED,
            non_retryable=True,
        )
    run.requests.append({"provider": provider, "model": model, "body": body, "digest": digest})
    raise BatchDeferred()


async def _beat_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        activity.heartbeat()


class BatchActivities:
    """The batch activities; registered by ``BatonPlugin``."""

    def __init__(self, resources: Any) -> None:
        self._get_resources = resources

    def _client(self, provider: str) -> tuple[Any, list[str], LLMConfig]:
        resources = self._get_resources()
        config = resources.llm_config if resources is not None else LLMConfig.from_env()
        if resources is not None and resources.llm_error:
            raise ApplicationError(resources.llm_error, type="InvalidLLMConfig", non_retryable=True)
        if provider not in BATCH_PROVIDERS:
            raise ApplicationError(
                f"{provider} has no batch API; drop batch=True",
                type=BATCH_UNSUPPORTED,
                non_retryable=True,
            )
        return resources.clients.get(provider, config), config.secrets(), config

    async def _call(self, provider: str, what: str, coro: Any) -> Any:
        _client, secrets, config = self._client(provider)
        # An upload or a download of thousands of requests can take a while: heartbeat
        # so that the activity's heartbeat timeout measures liveness, not size.
        beat = asyncio.ensure_future(_beat_every(_KEEP_ALIVE_S))
        try:
            return await coro
        except ApplicationError:
            raise
        except Exception as exc:
            mapped = map_provider_error(
                exc,
                provider=provider,
                model=f"batch {what}",
                secrets=secrets,
                timeout_s=config.timeout_s,
            )
            if mapped is None:
                raise
            raise mapped from None
        finally:
            beat.cancel()

    @activity.defn(name=SUBMIT_ACTIVITY)
    async def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create the provider batch, or find the one an earlier attempt created."""
        provider, key, requests = spec["provider"], spec["key"], spec["requests"]
        info = activity.info()
        # An earlier attempt that got its reply left the id in its heartbeat.
        for detail in info.heartbeat_details or ():
            if isinstance(detail, Mapping) and detail.get("key") == key and detail.get("batch_id"):
                return {"batch_id": detail["batch_id"], "reused": "heartbeat"}
        client, _secrets, _config = self._client(provider)
        if info.attempt > 1:
            # A little room for clock skew between Temporal and the provider.
            since = info.scheduled_time - timedelta(seconds=1)
            found = await self._call(
                provider,
                "lookup",
                find_batch(client, provider, key, count=len(requests), since=since),
            )
            if found is not None:
                log.info("batch %s was already submitted as %s; not submitting again", key, found)
                return {"batch_id": found, "reused": "lookup"}
        batch_id = await self._call(
            provider,
            "submit",
            submit_batch(client, provider, key, requests, workflow_id=spec.get("workflow_id", "")),
        )
        activity.heartbeat({"key": key, "batch_id": batch_id})
        return {"batch_id": batch_id}

    @activity.defn(name=POLL_ACTIVITY)
    async def poll(self, spec: dict[str, Any]) -> dict[str, Any]:
        provider = spec["provider"]
        client, _secrets, _config = self._client(provider)
        return await self._call(provider, "poll", poll_batch(client, provider, spec["batch_id"]))

    @activity.defn(name=CANCEL_ACTIVITY)
    async def cancel(self, spec: dict[str, Any]) -> None:
        provider = spec["provider"]
        client, _secrets, _config = self._client(provider)
        await self._call(provider, "cancel", cancel_batch(client, provider, spec["batch_id"]))

    @activity.defn(name=FETCH_ACTIVITY)
    async def fetch(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Each request's reply by custom_id; one ledger row per billed request."""
        provider, batch_id, key = spec["provider"], spec["batch_id"], spec["key"]
        client, _secrets, _config = self._client(provider)
        raw, created = await self._call(provider, "fetch", fetch_batch(client, provider, batch_id))
        info = activity.info()
        everyone = raw.pop(ALL_FAILED, None)
        replies: dict[str, dict[str, Any]] = {}
        records: list[UsageRecord] = []
        requests = spec["requests"]
        start = int(spec.get("start") or 0)
        budget = int(spec.get("max_bytes") or 0) or None
        size, following = 0, None
        for index in range(start, len(requests)):
            request = requests[index]
            if budget is not None and replies and size >= budget:
                following = index  # the rest in the next page
                break
            cid = request["custom_id"]
            reply = raw.get(cid) or everyone
            if reply is None:
                continue
            if "ok" in reply:
                call_id = f"{key}/{cid}"
                usage = batch_usage(
                    reply["ok"],
                    provider=provider,
                    model=str(request.get("model") or ""),
                    call_id=call_id,
                    requested_at=created,
                )
                reply = {
                    **reply,
                    "call_id": call_id,
                    "requested_at": created.isoformat() if created else None,
                }
                records.append(
                    UsageRecord(
                        workflow_id=info.workflow_id or "-",
                        run_id=info.workflow_run_id or "-",
                        workflow_name=spec.get("workflow_name") or "",
                        step=request["step"],
                        # Fixed per batch, not per attempt: a retried fetch writes no row
                        # twice (the ledger keys rows by activity, attempt and call id).
                        activity_id=f"batch/{key}",
                        attempt=1,
                        call_index=index,
                        usage=usage,
                        status="ok",
                    )
                )
            replies[cid] = reply
            size += len(json.dumps(reply, separators=(",", ":")))
        pending = await self._record(records)
        return {"replies": replies, "pending_usage": pending, "next": following}

    async def _record(self, records: list[UsageRecord]) -> list[dict[str, Any]]:
        resources = self._get_resources()
        if not records or resources is None or resources.store is None:
            return []
        try:
            await asyncio.wait_for(resources.store.record(records), _LEDGER_TIMEOUT_S)
        except LedgerWriteError as err:
            log.error("the ledger refused %d batch usage rows: %s", len(records), err)
            return []
        except (LedgerError, TimeoutError, OSError) as err:
            ledger_counters().failed(len(records), deferred=True)
            log.warning(
                "ledger write of %d batch rows deferred to the workflow: %s", len(records), err
            )
            return [r.model_dump(mode="json") for r in records]
        ledger_counters().wrote(len(records), path="batch")
        return []
