"""The stand-in's batch APIs: Anthropic Message Batches and OpenAI Batch (with files).

Wire formats as the providers document them, so the real SDK clients work unchanged:

* Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches[/{id}]``,
  ``GET /v1/messages/batches/{id}/results`` (JSONL), ``POST .../{id}/cancel``.
* OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files``,
  ``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches[/{id}]``,
  ``POST /v1/batches/{id}/cancel``.

A batch ends ``delay`` seconds after it was created (computed when asked: no timers run).
Each request is answered as the direct API would answer it (same text and usage), with
Anthropic's ``service_tier`` ``"batch"``. Knobs (attributes of ``standin.batch``)::

    standin.batch.delay = 1.0                       # seconds until a batch ends
    standin.batch.fail_request("doc-7", status=400) # requests whose custom_id contains it
    standin.batch.end_as = "expired"                # or "cancelled", "failed": half answered
    standin.batch.drop_results = True               # ended, but no results file
    standin.batch.lose_create_replies = 1           # create, then answer 500 (lost reply)

``standin.batch.batches`` lists what was created; ``standin.batch.billed(model)`` counts
the requests answered with usage.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

__all__ = ["BatchAPI", "StandInBatch"]

Write = Callable[..., Awaitable[None]]
EndAs = Literal["ended", "expired", "cancelled", "failed"]

_ANTHROPIC = re.compile(r"/messages/batches(?:/(?P<id>[^/]+))?(?:/(?P<op>results|cancel))?$")
_OPENAI_BATCH = re.compile(r"/batches(?:/(?P<id>[^/]+))?(?:/(?P<op>cancel))?$")
_OPENAI_FILE = re.compile(r"/files(?:/(?P<id>[^/]+))?(?:/(?P<op>content))?$")


@dataclass
class StandInBatch:
    """One batch the stand-in holds."""

    id: str
    provider: Literal["anthropic", "openai"]
    requests: list[dict[str, Any]]  # {"custom_id", "body"}
    created: float
    end_as: EndAs = "ended"
    metadata: dict[str, str] = field(default_factory=dict)
    input_file_id: str | None = None
    cancelled_at: float | None = None
    results: dict[str, dict[str, Any]] | None = None  # custom_id -> result, once ended
    output_file_id: str | None = None
    error_file_id: str | None = None


class BatchAPI:
    """The batch endpoints of one :class:`~baton_temporal.testing.StandIn`."""

    def __init__(self, standin: Any, *, delay: float = 1.0) -> None:
        self._standin = standin
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.delay = delay
        self.end_as: EndAs = "ended"
        self.drop_results = False
        self.lose_create_replies = 0
        self._failures: list[tuple[str, int, str, str]] = []
        self.batches: list[StandInBatch] = []
        self._files: dict[str, dict[str, Any]] = {}  # id -> {"meta": {...}, "data": bytes}
        self._billed: list[str] = []

    # ---- knobs and records -------------------------------------------------------------

    def fail_request(
        self,
        match: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
        message: str = "prompt is too long: 250000 tokens > 200000 maximum",
    ) -> None:
        """Answer requests whose custom_id contains ``match`` with this error."""
        with self._lock:
            self._failures.append((match, status, error_type, message))

    def billed(self, model: str | None = None) -> int:
        """Batch requests answered with usage (billed), optionally of one model."""
        with self._lock:
            return sum(1 for m in self._billed if model is None or m == model)

    def reset(self) -> None:
        with self._lock:
            self.batches.clear()
            self._files.clear()
            self._failures.clear()
            self._billed.clear()
            self.end_as, self.drop_results, self.lose_create_replies = "ended", False, 0

    # ---- routing -------------------------------------------------------------------------

    @staticmethod
    def handles(path: str) -> bool:
        return bool(
            _ANTHROPIC.search(path) or _OPENAI_BATCH.search(path) or _OPENAI_FILE.search(path)
        )

    async def serve(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        write: Write,
        write_raw: Write,
    ) -> None:
        split = urlsplit(target)
        path, query = split.path.rstrip("/"), parse_qs(split.query)
        match = _ANTHROPIC.search(path)
        if match:
            status, payload = self._anthropic(method, match["id"], match["op"], body)
        elif (match := _OPENAI_FILE.search(path)) is not None:
            if match["op"] == "content" and method == "GET":
                data = self._files.get(match["id"] or "")
                if data is None:
                    await write(404, _openai_error(404, f"No such File object: {match['id']}"))
                else:
                    await write_raw(200, data["data"])
                return
            status, payload = self._openai_files(method, match["id"], headers, body, query)
        else:
            match = _OPENAI_BATCH.search(path)
            assert match is not None
            status, payload = self._openai_batches(method, match["id"], match["op"], body)
        if isinstance(payload, bytes):
            await write_raw(status, payload)
        else:
            await write(status, payload)

    # ---- Anthropic -----------------------------------------------------------------------

    def _anthropic(
        self, method: str, batch_id: str | None, op: str | None, body: bytes
    ) -> tuple[int, Any]:
        if method == "POST" and batch_id is None:
            try:
                requests = json.loads(body)["requests"]
                items = [{"custom_id": r["custom_id"], "body": r["params"]} for r in requests]
            except (ValueError, KeyError, TypeError):
                return 400, _anthropic_error(400, "requests: Field required")
            batch = self._create("anthropic", items, {})
            if self._lose_reply():
                return 500, _anthropic_error(500, "Internal server error")
            return 200, self._anthropic_json(batch)
        if method == "GET" and batch_id is None:
            with self._lock:
                mine = [b for b in self.batches if b.provider == "anthropic"]
            data = [self._anthropic_json(b) for b in reversed(mine)]
            return 200, {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        found = self._find(batch_id, "anthropic")
        if found is None:
            return 404, _anthropic_error(404, f"message_batch {batch_id} not found")
        batch = found
        if op == "cancel" and method == "POST":
            batch.cancelled_at = batch.cancelled_at or time.time()
            return 200, self._anthropic_json(batch)
        if op == "results" and method == "GET":
            results = self._results(batch)
            if results is None or self.drop_results:
                return 404, _anthropic_error(404, "results are not available")
            lines = [
                json.dumps(
                    {
                        "custom_id": r["custom_id"],
                        "result": _anthropic_result(results[r["custom_id"]]),
                    }
                )
                for r in batch.requests
                if r["custom_id"] in results
            ]
            return 200, ("\n".join(lines) + "\n").encode()
        return 200, self._anthropic_json(batch)

    def _anthropic_json(self, batch: StandInBatch) -> dict[str, Any]:
        results = self._results(batch)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if results is None:
            counts["processing"] = len(batch.requests)
        else:
            for result in results.values():
                counts[
                    {"ok": "succeeded", "error": "errored", "cancelled": "canceled"}.get(
                        result["kind"], result["kind"]
                    )
                ] += 1
        ended = results is not None
        url = f"{self._standin.url}/v1/messages/batches/{batch.id}/results"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended"
            if ended
            else ("canceling" if batch.cancelled_at else "in_progress"),
            "request_counts": counts,
            "ended_at": _iso(batch.created + self.delay) if ended else None,
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + 86400),
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.cancelled_at) if batch.cancelled_at else None,
            "results_url": url if ended and not self.drop_results else None,
        }

    # ---- OpenAI --------------------------------------------------------------------------

    def _openai_files(
        self,
        method: str,
        file_id: str | None,
        headers: dict[str, str],
        body: bytes,
        query: dict[str, list[str]],
    ) -> tuple[int, Any]:
        if method == "POST" and file_id is None:
            fields = _multipart(headers.get("content-type", ""), body)
            if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
                return 400, _openai_error(400, "'file' and purpose='batch' are required")
            name, data = fields["file"]
            meta: dict[str, Any] = {
                "id": f"file-standin{next(self._ids):05d}",
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": name or "upload.jsonl",
                "purpose": "batch",
                "status": "processed",
            }
            with self._lock:
                self._files[meta["id"]] = {"meta": meta, "data": data}
            return 200, meta
        if method == "GET" and file_id is None:
            purposes = query.get("purpose") or []
            with self._lock:
                files = [f["meta"] for f in self._files.values()]
            listed = [f for f in reversed(files) if not purposes or f["purpose"] in purposes]
            return 200, {"object": "list", "data": listed, "has_more": False}
        with self._lock:
            found = self._files.get(file_id or "")
        if found is None:
            return 404, _openai_error(404, f"No such File object: {file_id}")
        return 200, found["meta"]

    def _openai_batches(
        self, method: str, batch_id: str | None, op: str | None, body: bytes
    ) -> tuple[int, Any]:
        if method == "POST" and batch_id is None:
            try:
                spec = json.loads(body)
                file_id = spec["input_file_id"]
            except (ValueError, KeyError, TypeError):
                return 400, _openai_error(400, "input_file_id is required")
            with self._lock:
                found = self._files.get(file_id)
            if found is None:
                return 404, _openai_error(404, f"No such File object: {file_id}")
            items = []
            for line in found["data"].decode().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    items.append({"custom_id": entry["custom_id"], "body": entry["body"]})
            batch = self._create("openai", items, dict(spec.get("metadata") or {}))
            batch.input_file_id = file_id
            if self._lose_reply():
                return 500, _openai_error(500, "The server had an error processing your request.")
            return 200, self._openai_json(batch)
        if method == "GET" and batch_id is None:
            with self._lock:
                mine = [b for b in self.batches if b.provider == "openai"]
            data = [self._openai_json(b) for b in reversed(mine)]
            return 200, {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        found_batch = self._find(batch_id, "openai")
        if found_batch is None:
            return 404, _openai_error(404, f"No batch found with id '{batch_id}'.")
        batch = found_batch
        if op == "cancel" and method == "POST":
            batch.cancelled_at = batch.cancelled_at or time.time()
        return 200, self._openai_json(batch)

    def _openai_json(self, batch: StandInBatch) -> dict[str, Any]:
        results = self._results(batch)
        done = results is not None
        status = "in_progress" if not batch.cancelled_at else "cancelling"
        errors = None
        counts = {"total": len(batch.requests), "completed": 0, "failed": 0}
        if done:
            assert results is not None
            status = {
                "ended": "completed",
                "expired": "expired",
                "cancelled": "cancelled",
                "failed": "failed",
            }[batch.end_as]
            if batch.cancelled_at and batch.end_as == "ended":
                status = "cancelled"
            if batch.end_as == "failed":
                errors = {
                    "object": "list",
                    "data": [
                        {
                            "code": "invalid_request",
                            "message": "Line 1: the model does not support the batch API",
                            "line": 1,
                            "param": "body.model",
                        }
                    ],
                }
            else:
                self._openai_files_of(batch, results)
            counts["completed"] = sum(1 for r in results.values() if r["kind"] == "ok")
            counts["failed"] = sum(1 for r in results.values() if r["kind"] == "error")
        ended_at = int(batch.created + self.delay) if done else None
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": None if self.drop_results else batch.output_file_id,
            "error_file_id": None if self.drop_results else batch.error_file_id,
            "created_at": int(batch.created),
            "in_progress_at": int(batch.created),
            "expires_at": int(batch.created + 86400),
            "finalizing_at": ended_at,
            "completed_at": ended_at if status == "completed" else None,
            "failed_at": ended_at if status == "failed" else None,
            "expired_at": ended_at if status == "expired" else None,
            "cancelling_at": int(batch.cancelled_at) if batch.cancelled_at else None,
            "cancelled_at": ended_at if status == "cancelled" else None,
            "request_counts": counts,
            "metadata": batch.metadata or None,
        }

    def _openai_files_of(self, batch: StandInBatch, results: dict[str, dict[str, Any]]) -> None:
        if batch.output_file_id is not None or batch.error_file_id is not None:
            return
        out, err = [], []
        for n, request in enumerate(batch.requests):
            result = results.get(request["custom_id"])
            if result is None:
                continue
            line: dict[str, Any] = {
                "id": f"batch_req_{batch.id}_{n}",
                "custom_id": request["custom_id"],
            }
            if result["kind"] == "ok":
                line["response"] = {
                    "status_code": 200,
                    "request_id": f"req_{n}",
                    "body": result["body"],
                }
                line["error"] = None
                out.append(line)
            elif result["kind"] == "error":
                line["response"] = {
                    "status_code": result["status"],
                    "request_id": f"req_{n}",
                    "body": {
                        "error": {
                            "message": result["message"],
                            "type": result["type"],
                            "param": None,
                            "code": None,
                        }
                    },
                }
                line["error"] = None
                err.append(line)
            else:
                code = "batch_expired" if result["kind"] == "expired" else "batch_cancelled"
                line["response"] = None
                line["error"] = {
                    "code": code,
                    "message": "This request could not be executed before the batch ended.",
                }
                err.append(line)
        for kind, lines in (("output", out), ("error", err)):
            if not lines:
                continue
            file_id = f"file-standin{next(self._ids):05d}"
            data = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
            meta = {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": f"{batch.id}_{kind}.jsonl",
                "purpose": "batch_output",
                "status": "processed",
            }
            with self._lock:
                self._files[file_id] = {"meta": meta, "data": data}
            if kind == "output":
                batch.output_file_id = file_id
            else:
                batch.error_file_id = file_id

    # ---- shared --------------------------------------------------------------------------

    def _create(
        self,
        provider: Literal["anthropic", "openai"],
        items: list[dict[str, Any]],
        metadata: dict[str, str],
    ) -> StandInBatch:
        prefix = "msgbatch_standin" if provider == "anthropic" else "batch_standin"
        batch = StandInBatch(
            id=f"{prefix}{next(self._ids):05d}",
            provider=provider,
            requests=items,
            created=time.time(),
            end_as=self.end_as,
            metadata=metadata,
        )
        with self._lock:
            self.batches.append(batch)
        return batch

    def _lose_reply(self) -> bool:
        with self._lock:
            if self.lose_create_replies > 0:
                self.lose_create_replies -= 1
                return True
        return False

    def _find(self, batch_id: str | None, provider: str) -> StandInBatch | None:
        with self._lock:
            for batch in self.batches:
                if batch.id == batch_id and batch.provider == provider:
                    return batch
        return None

    def _results(self, batch: StandInBatch) -> dict[str, dict[str, Any]] | None:
        """The batch's results once it ended (computed once); None while it runs."""
        if batch.results is not None:
            return batch.results
        cancelled = batch.cancelled_at is not None
        if not cancelled and time.time() - batch.created < self.delay:
            return None
        results: dict[str, dict[str, Any]] = {}
        half = len(batch.requests) // 2
        for n, request in enumerate(batch.requests):
            cid = request["custom_id"]
            if batch.end_as == "failed":
                results[cid] = {
                    "kind": "error",
                    "status": 400,
                    "type": "invalid_request",
                    "message": "the batch failed validation",
                }
                continue
            if (cancelled or batch.end_as in ("expired", "cancelled")) and n >= half:
                kind = "expired" if batch.end_as == "expired" else "cancelled"
                results[cid] = {"kind": kind}
                continue
            failure = next((f for f in self._failures if f[0] in cid), None)
            if failure is not None:
                results[cid] = {
                    "kind": "error",
                    "status": failure[1],
                    "type": failure[2],
                    "message": failure[3],
                }
                continue
            body = request["body"]
            model = str(body.get("model"))
            reply, _usage, _text = self._standin._answer(
                batch.provider, model, body, _plain_answer(), commit=True
            )
            if batch.provider == "anthropic":
                reply["usage"]["service_tier"] = "batch"
            results[cid] = {"kind": "ok", "body": reply}
            with self._lock:
                self._billed.append(model)
        batch.results = results
        return results


def _anthropic_result(result: dict[str, Any]) -> dict[str, Any]:
    if result["kind"] == "ok":
        return {"type": "succeeded", "message": result["body"]}
    if result["kind"] == "error":
        return {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": result["type"], "message": result["message"]},
            },
        }
    return {"type": "canceled" if result["kind"] == "cancelled" else "expired"}


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _openai_error(status: int, message: str) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename, bytes)}`` of a multipart/form-data body."""
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def _plain_answer() -> Any:
    """The stand-in's normal answer (a batch request has no scripted fault)."""
    from .standin import Fault  # here: standin imports this module

    return Fault.ok()
