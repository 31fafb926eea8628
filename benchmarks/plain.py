"""Comparator 3 (activities) and 4 (the floor): the seed pipeline with no baton library.

The activities do exactly what the seed's steps do (``workers/examples/seed.py``): the
same prompts, the same models, the same provider calls through the same SDK clients
(``baton_temporal.llm.complete``, which the baton steps reach through ``call_llm``), but
no Job, no step wrapper, no usage interceptor, no ledger.

The workflow that runs them lives in :mod:`benchmarks.plain_workflow` (it imports
nothing but temporalio, as a plain Temporal workflow module would).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections import Counter
from typing import Any

from temporalio import activity

from baton_temporal.llm import LLMClients, LLMConfig, complete

DEFAULT_MODEL = "claude-sonnet-4-20250514"
ASSESS_PROMPT = (
    "You review documents. Rate the document's quality from 1 (poor) to 10 (excellent) "
    'and answer with JSON only: {"score": <1-10>, "label": "poor|fair|good|excellent", '
    '"reason": "<one sentence>"}'
)

_clients: LLMClients | None = None
_config: LLMConfig | None = None


def _llm() -> tuple[LLMClients, LLMConfig]:
    """One client cache per process (per event loop), like a worker's."""
    global _clients, _config
    if _clients is None or _config is None:
        _clients, _config = LLMClients(), LLMConfig.from_env()
    return _clients, _config


async def close_clients() -> None:
    global _clients
    if _clients is not None:
        await _clients.aclose()
        _clients = None


async def _call(messages: list[dict[str, Any]], model: str, max_tokens: int) -> str:
    clients, config = _llm()
    reply = await complete(
        messages, model=model, config=config, clients=clients, max_tokens=max_tokens
    )
    return reply.text


@activity.defn(name="plain_parse")
async def parse(req: dict[str, Any]) -> dict[str, Any]:
    text = str(req.get("text", ""))
    sections = [s.strip() for s in re.split(r"\n\s*\n", text) if s.strip()]
    return {"doc_id": req.get("doc_id"), "sections": sections, "words": len(text.split())}


@activity.defn(name="plain_assess")
async def assess(req: dict[str, Any]) -> dict[str, Any]:
    model = req["model"]
    document = "\n\n".join(req["parsed"]["sections"])
    text = await _call(
        [
            {"role": "system", "content": ASSESS_PROMPT},
            {"role": "user", "content": document},
        ],
        model,
        200,
    )
    verdict = _json_object(text)
    return {
        "model": model,
        "score": verdict.get("score"),
        "label": verdict.get("label"),
        "reason": verdict.get("reason", ""),
    }


@activity.defn(name="plain_synthesize")
async def synthesize(req: dict[str, Any]) -> dict[str, Any]:
    by_model: dict[str, dict[str, Any]] = req["by_model"]
    scores = [r["score"] for r in by_model.values() if isinstance(r.get("score"), int | float)]
    labels = [str(r["label"]) for r in by_model.values() if r.get("label") is not None]
    counts = Counter(labels)
    top = max(counts.values()) if counts else 0
    winner = next((v for v in labels if counts[v] == top), None)
    summary = "\n".join(f"- {m}: {r.get('score')} ({r.get('label')})" for m, r in by_model.items())
    note = await _call(
        [
            {"role": "system", "content": "Merge reviewers' verdicts into one sentence."},
            {"role": "user", "content": summary},
        ],
        req["model"],
        120,
    )
    return {
        "consensus_score": statistics.median(scores) if scores else None,
        "consensus_label": winner,
        "agreement": round(top / len(labels), 3) if labels else 0.0,
        "by_model": {m: r.get("score") for m, r in by_model.items()},
        "note": note,
    }


@activity.defn(name="plain_report")
async def report(req: dict[str, Any]) -> dict[str, Any]:
    result = req["synthesis"]
    lines = ["# Document quality report", ""]
    lines.append(
        f"Consensus score **{result['consensus_score']}** "
        f"({result['consensus_label']}, agreement {result['agreement']:.0%})."
    )
    for model, score in result["by_model"].items():
        lines.append(f"- {model}: {score}")
    text = await _call(
        [{"role": "user", "content": "Write a one-line verdict for:\n" + "\n".join(lines)}],
        DEFAULT_MODEL,
        80,
    )
    lines += ["", text]
    return {"markdown": "\n".join(lines)}


ACTIVITIES = [parse, assess, synthesize, report]


async def floor_pipeline(req: dict[str, Any]) -> dict[str, Any]:
    """Comparator 4: the same four levels in plain asyncio, no Temporal at all."""
    parsed = await parse(req)
    models: list[str] = req["models"]
    verdicts = await asyncio.gather(
        *(assess({"model": m, "doc_id": req.get("doc_id"), "parsed": parsed}) for m in models)
    )
    by_model = dict(zip(models, verdicts, strict=True))
    synthesis = await synthesize({"model": req["synthesize_model"], "by_model": by_model})
    final = await report({"synthesis": synthesis})
    return {"parse": parsed, "assess": by_model, "synthesis": synthesis, "report": final}


def _json_object(text: str) -> dict[str, Any]:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return {}
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
