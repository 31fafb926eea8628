"""The providers' batch APIs through their SDK clients: submit, poll, fetch, cancel.

Anthropic Message Batches (``messages.batches``) and OpenAI Batch (a JSONL file uploaded
with ``purpose="batch"``, then ``batches``). Both take requests keyed by ``custom_id``
and return results keyed by it, in any order. Replies come back as the same JSON a
direct call returns, so usage and text are read as for any call, priced at the batch
rate (``service_tier="batch"``).

Example::

    batch_id = await submit_batch(client, "openai", key, [{"custom_id": "00000-a",
                                                           "body": {...}}])
    if (await poll_batch(client, "openai", batch_id))["ended"]:
        replies = await fetch_batch(client, "openai", batch_id)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from ..usage import LLMUsage
from ._complete import LLMResponse, _extract_anthropic, _extract_openai
from ._providers import Provider
from ._usage import usage_from_reply

__all__ = [
    "BATCH_PROVIDERS",
    "BATCH_REQUEST_FAILED",
    "BATCH_UNSUPPORTED",
    "batch_usage",
    "fetch_batch",
    "find_batch",
    "poll_batch",
    "response_from_batch",
    "submit_batch",
]

# The providers with a batch API; an OpenAI-compatible server (Ollama, vLLM) has none.
BATCH_PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai")
BATCH_UNSUPPORTED = "BatchUnsupported"
BATCH_REQUEST_FAILED = "BatchRequestFailed"
KEY_METADATA = "baton_batch_key"
OPENAI_ENDPOINT = "/v1/chat/completions"
# Batches looked at when searching for one already submitted under a key.
_LOOKUP_LIMIT = 200

_OPENAI_ENDED = {"completed", "failed", "expired", "cancelled"}


async def find_batch(
    client: Any, provider: str, key: str, *, count: int, since: datetime
) -> str | None:
    """The id of a batch already submitted under ``key`` (a retried submit), else None.

    OpenAI: by the key in the batch's metadata, exact. Anthropic batches carry no
    metadata: a batch created since ``since`` with exactly ``count`` requests is taken
    when it is the only one (two such submissions at once are ambiguous: then None).
    """
    if provider == "openai":
        seen = 0
        async for batch in client.batches.list(limit=100):
            if (batch.metadata or {}).get(KEY_METADATA) == key:
                return str(batch.id)
            seen += 1
            if seen >= _LOOKUP_LIMIT:
                break
        return None
    found: list[str] = []
    seen = 0
    async for batch in client.messages.batches.list(limit=100):
        created = batch.created_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if created is not None and created < since:
            break  # newest first: the rest are older
        counts = batch.request_counts
        total = (
            counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        )
        if total == count:
            found.append(str(batch.id))
        seen += 1
        if seen >= _LOOKUP_LIMIT:
            break
    return found[0] if len(found) == 1 else None


async def submit_batch(
    client: Any,
    provider: str,
    key: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    workflow_id: str = "",
) -> str:
    """Create the provider batch of ``requests`` (``{"custom_id", "body"}``); its id."""
    if provider == "anthropic":
        batch = await client.messages.batches.create(
            requests=[{"custom_id": r["custom_id"], "params": r["body"]} for r in requests]
        )
        return str(batch.id)
    filename = f"{key}.jsonl"
    file_id = None
    async for existing in client.files.list(purpose="batch", limit=100):
        if existing.filename == filename:
            file_id = existing.id
            break
    if file_id is None:
        lines = [
            json.dumps(
                {
                    "custom_id": r["custom_id"],
                    "method": "POST",
                    "url": OPENAI_ENDPOINT,
                    "body": r["body"],
                },
                separators=(",", ":"),
            )
            for r in requests
        ]
        data = ("\n".join(lines) + "\n").encode()
        uploaded = await client.files.create(
            file=(filename, data, "application/jsonl"), purpose="batch"
        )
        file_id = uploaded.id
    batch = await client.batches.create(
        input_file_id=file_id,
        endpoint=OPENAI_ENDPOINT,
        completion_window="24h",
        metadata={KEY_METADATA: key, "baton_workflow_id": workflow_id[:500]},
    )
    return str(batch.id)


async def poll_batch(client: Any, provider: str, batch_id: str) -> dict[str, Any]:
    """``{"ended": bool, "status": str, "counts": {...}}`` of a batch."""
    if provider == "anthropic":
        batch = await client.messages.batches.retrieve(batch_id)
        return {
            "ended": batch.processing_status == "ended",
            "status": batch.processing_status,
            "counts": batch.request_counts.model_dump(mode="json"),
        }
    batch = await client.batches.retrieve(batch_id)
    counts = batch.request_counts.model_dump(mode="json") if batch.request_counts else {}
    return {"ended": batch.status in _OPENAI_ENDED, "status": batch.status, "counts": counts}


async def cancel_batch(client: Any, provider: str, batch_id: str) -> None:
    if provider == "anthropic":
        await client.messages.batches.cancel(batch_id)
    else:
        await client.batches.cancel(batch_id)


async def fetch_batch(
    client: Any, provider: str, batch_id: str
) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    """Each request's reply by custom_id: ``{"ok": <reply JSON>}`` or ``{"error": {...}}``,
    and when the batch was created (the calls are priced at that day's prices).

    Requests the batch left unanswered (expired, cancelled) get an error; a request
    absent from the results is absent here too (the caller reports it).
    """
    if provider == "anthropic":
        return await _fetch_anthropic(client, batch_id)
    return await _fetch_openai(client, batch_id)


async def _fetch_anthropic(
    client: Any, batch_id: str
) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    batch = await client.messages.batches.retrieve(batch_id)
    created = batch.created_at
    if not batch.results_url:
        return _all_failed_later(f"the Anthropic batch {batch_id} has no results file"), created
    replies: dict[str, dict[str, Any]] = {}
    async for item in await client.messages.batches.results(batch_id):
        result = item.result
        if result.type == "succeeded":
            replies[item.custom_id] = {"ok": result.message.model_dump(mode="json")}
        elif result.type == "errored":
            error = getattr(result.error, "error", None)
            replies[item.custom_id] = _error(
                getattr(error, "type", None) or "api_error",
                getattr(error, "message", None) or "the request failed",
            )
        else:  # "canceled" / "expired": never processed, not billed
            replies[item.custom_id] = _error(
                result.type,
                f"the batch {batch_id} {result.type} before this request was processed",
            )
    return replies, created


async def _fetch_openai(
    client: Any, batch_id: str
) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    batch = await client.batches.retrieve(batch_id)
    created = datetime.fromtimestamp(batch.created_at, UTC) if batch.created_at else None
    replies: dict[str, dict[str, Any]] = {}
    if batch.status == "failed":
        errors = [f"{e.code}: {e.message}" for e in (batch.errors.data if batch.errors else [])]
        message = f"the OpenAI batch {batch_id} failed validation: " + (
            "; ".join(e for e in errors[:5]) or "no reason given"
        )
        return _all_failed_later(message), created
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        content = await client.files.content(file_id)
        for line in content.text.splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            cid = entry.get("custom_id")
            if not isinstance(cid, str):
                continue
            replies[cid] = _openai_line(entry)
    if not replies and batch.status in ("expired", "cancelled"):
        return _all_failed_later(f"the OpenAI batch {batch_id} {batch.status}"), created
    return replies, created


def _openai_line(entry: Mapping[str, Any]) -> dict[str, Any]:
    error = entry.get("error")
    if isinstance(error, Mapping):
        return _error(str(error.get("code") or "error"), str(error.get("message") or ""))
    response = entry.get("response")
    if not isinstance(response, Mapping):
        return _error("malformed", "the result line has neither a response nor an error")
    body = response.get("body")
    if response.get("status_code") == 200 and isinstance(body, Mapping):
        return {"ok": dict(body)}
    detail = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(detail, Mapping):
        return _error(
            str(detail.get("type") or detail.get("code") or "error"),
            f"HTTP {response.get('status_code')}: {detail.get('message')}",
        )
    return _error("error", f"HTTP {response.get('status_code')}")


# A marker: every request of the batch failed the same way (filled in by the caller).
ALL_FAILED = "*"


def _all_failed_later(message: str) -> dict[str, dict[str, Any]]:
    return {ALL_FAILED: _error("batch_failed", message)}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message[:2000]}}


def batch_usage(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    call_id: str,
    requested_at: datetime | None,
) -> LLMUsage:
    """The usage of one batch reply: as a direct reply's, at the batch price tier."""
    reported = data.get("model")
    if not isinstance(reported, str) or not reported or len(reported) > 256:
        reported = model
    usage = usage_from_reply(
        data, provider=provider, model=reported, call_id=call_id, requested_at=requested_at
    )
    return usage.model_copy(update={"service_tier": "batch"})


def response_from_batch(
    reply: Mapping[str, Any],
    *,
    provider: Provider,
    name: str,
    request: dict[str, Any],
) -> LLMResponse:
    """The :class:`LLMResponse` of one batch reply; a failed request raises its error
    (non-retryable: the batch answered it for good)."""
    error = reply.get("error")
    if isinstance(error, Mapping):
        raise ApplicationError(
            f"{provider} batch request for model {name!r} failed: {error.get('type')}: "
            f"{error.get('message')}",
            {"provider_error": dict(error)},
            type=BATCH_REQUEST_FAILED,
            non_retryable=True,
        )
    data = reply.get("ok")
    if not isinstance(data, Mapping):
        raise ApplicationError(
            f"{provider} batch reply for model {name!r} is malformed (no 'ok' or 'error')",
            type=BATCH_REQUEST_FAILED,
            non_retryable=True,
        )
    at = reply.get("requested_at")
    usage = batch_usage(
        data,
        provider=provider,
        model=name,
        call_id=str(reply.get("call_id") or ""),
        requested_at=datetime.fromisoformat(at) if isinstance(at, str) else None,
    )
    extract = _extract_anthropic if provider == "anthropic" else _extract_openai
    text, stop = extract(dict(data))
    return LLMResponse(
        text=text,
        model=usage.model,
        provider=provider,
        usage=usage,
        stop_reason=stop,
        raw_request=request,
        raw_response=dict(data),
    )
