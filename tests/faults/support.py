"""Helpers of the fault-injection tests: worker processes, tagged seed flows, ledger rows,
and telling the stand-in's requests apart by flow and step."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import StepStat
from baton_temporal.multi_model import short_name
from baton_temporal.testing import RecordedRequest, StandIn
from workers.examples import seed

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "baton worker on task queue"
TAG_RE = re.compile(r"flowtag-[0-9a-z]+-\d+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 30, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never became true within {timeout} s")


# ---- the seed's fan-out flow, tagged so every LLM call names its flow -------------------


def tag_responder(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """The stand-in's answer: an assessment whose label is the flow's tag.

    The seed's synthesis prompt lists each model's label, and its report prompt the
    consensus label, so every call of a flow carries the flow's tag in its prompt.
    """
    text = "\n".join(str(m.get("content", "")) for m in messages)
    found = TAG_RE.search(text)
    score = int(hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()[:6], 16) % 10 + 1
    return json.dumps({"score": score, "label": found.group(0) if found else "none"})


def tagged_text(tag: str) -> str:
    return f"Report {tag}.\n\nRevenue grew by a tenth.\n\nCosts fell; {tag} ends here."


# Retries that stay quick however often a step was cut short: the default backoff (x2 up
# to 60 s) would leave a step that lost several workers waiting a minute.
QUICK_RETRY_JSON = {
    "initial_interval": 0.5,
    "backoff_coefficient": 1.5,
    "maximum_interval": 2.0,
    "maximum_attempts": 30,
}


def seed_flow_data(tag: str, workflow_id: str, *, heartbeat_s: float = 5.0) -> dict[str, Any]:
    """The seed's ``quality_flow`` as flow JSON, with a short heartbeat timeout and quick
    retries on every step.

    Steps heartbeat while they run, so a worker killed mid-step is noticed within the
    heartbeat timeout; the library's default (30 s) would make every kill cost 30 s.
    """
    data = seed.quality_flow(tagged_text(tag), workflow_id=workflow_id).to_dict()
    for node in data["steps"]:
        options = node.setdefault("options", {})
        options["heartbeat_timeout"] = heartbeat_s
        options["retry"] = dict(QUICK_RETRY_JSON)
    return data


async def start_seed_flow(client: Any, data: dict[str, Any], task_queue: str) -> Any:
    return await baton.Flow.from_json(data).start(client, task_queue=task_queue)


LLM_STEPS = ("assess_sonnet_4", "assess_opus_4", "assess_gpt_4o", "assess_synthesis", "report")
# The activity (step function) each of the seed flow's LLM steps runs.
ACTIVITY = {
    "assess_sonnet_4": "assess",
    "assess_opus_4": "assess",
    "assess_gpt_4o": "assess",
    "assess_synthesis": "synthesize_assessments",
    "report": "report",
}
_FAILED_RE = re.compile(
    r"Completing activity as failed \(\{.*?'activity_type': '([^']+)'.*?'workflow_id': '([^']+)'"
)


def classify(request: RecordedRequest) -> tuple[str | None, str | None]:
    """(flow tag, seed step) of a stand-in request."""
    body = request.body if isinstance(request.body, dict) else {}
    messages = body.get("messages") or []
    system = body.get("system") or ""
    texts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
    if not system:
        system = next((str(m.get("content")) for m in messages if m.get("role") == "system"), "")
    whole = "\n".join(texts)
    found = TAG_RE.search(whole)
    tag = found.group(0) if found else None
    if system == seed.ASSESS_PROMPT:
        step = f"assess_{short_name(request.model or '')}"
    elif system.startswith("Merge reviewers"):
        step = "assess_synthesis"
    elif whole.startswith("Write a one-line verdict"):
        step = "report"
    else:
        step = None
    return tag, step


# ---- ledger ----------------------------------------------------------------------------


async def ledger_rows(store: LedgerStore, prefix: str = "") -> list[dict[str, Any]]:
    table = StepStat.__table__
    query = sa.select(table).order_by(table.c.id)
    if prefix:
        query = query.where(table.c.workflow_id.startswith(prefix))
    async with store.engine.connect() as conn:
        result = await conn.execute(query)
        return [dict(r) for r in result.mappings().all()]


def normalised_tokens(request: RecordedRequest) -> tuple[int, int]:
    """(input, output) tokens of a billed request as the ledger stores them."""
    usage = request.usage or {}
    if request.provider == "anthropic":
        total_in = (
            usage.get("input_tokens", 0)
            + usage.get("cache_creation_input_tokens", 0)
            + usage.get("cache_read_input_tokens", 0)
        )
        return total_in, usage.get("output_tokens", 0)
    return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)


# ---- worker processes ------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """``python -m workers.worker`` on the seed's steps, with API keys of its own so
    that the stand-in can tell which process sent a request."""

    number: int
    proc: subprocess.Popen[bytes]
    log: Path
    fingerprint: str
    started: float = field(default_factory=time.time)
    killed_at: float | None = None

    def ready(self) -> bool:
        return self.log.exists() and READY_LINE in self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.killed_at = time.time()
            self.proc.kill()  # SIGKILL
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.alive():
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def spawn_worker(
    number: int,
    *,
    address: str,
    task_queue: str,
    standin: StandIn,
    ledger_url: str,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> WorkerProcess:
    key = f"sk-worker-{number:04d}-not-a-real-key"
    log = log_dir / f"worker-{number:03d}.log"
    env = {
        **os.environ,
        **standin.env(),
        "ANTHROPIC_API_KEY": key,
        "OPENAI_API_KEY": key,
        "TEMPORAL_ADDRESS": address,
        "BATON_STEPS": "workers.examples.seed",
        "BATON_TASK_QUEUE": task_queue,
        "BATON_LEDGER_URL": ledger_url,
        "BATON_GRACEFUL_SHUTDOWN_S": "5",
        **(extra_env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12]
    return WorkerProcess(number=number, proc=proc, log=log, fingerprint=fingerprint)


def cancelled_attempts(log: Path) -> set[tuple[str, str]]:
    """(workflow id, activity type) of the attempts a worker's log shows cancelled."""
    found: set[tuple[str, str]] = set()
    record: list[str] = []
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in [*text.splitlines(), "2000-01-01 end"]:
        if line[:2] == "20" and record:
            head = _FAILED_RE.search(record[0])
            if head and any("CancelledError" in r for r in record):
                found.add((head.group(2), head.group(1)))
            record = []
        record.append(line)
    return found


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A small fixed-width text table for the figures the tests print."""
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def dump(path: Path, **parts: Any) -> None:
    """Write what a fault test saw (requests, rows, workers...) as JSON, for post-mortems."""

    def plain(value: Any) -> Any:
        if isinstance(value, RecordedRequest):
            tag, step = classify(value)
            return {
                "index": value.index,
                "time": value.time,
                "outcome": value.outcome,
                "billed": value.billed,
                "key": value.api_key_fingerprint,
                "model": value.model,
                "tag": tag,
                "step": step,
                "usage": value.usage,
            }
        if isinstance(value, WorkerProcess):
            return {
                "number": value.number,
                "key": value.fingerprint,
                "started": value.started,
                "killed_at": value.killed_at,
            }
        return value

    data = {name: [plain(v) for v in values] for name, values in parts.items()}
    path.write_text(json.dumps(data, default=str, indent=1))
