"""The scale benchmark's plain-temporalio activities: the seed's work, straight on the SDKs.

What a team without baton would write: one ``AsyncAnthropic`` and one ``AsyncOpenAI``
per worker process (SDK defaults, ``max_retries=0`` as baton's), ``@activity.defn``
functions that send the same requests as the seed's steps (the assessment as structured
output: forced tool use for Claude 4, a strict JSON schema for gpt-4o) and validate the
reply with pydantic. The workflow is :class:`benchmarks.plain_workflow.PlainSeed`.
"""

from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity

ASSESS_PROMPT = (
    "You review documents. Rate the document's quality from 1 (poor) to 10 (excellent), "
    "label it poor, fair, good or excellent, and give the reason in one sentence."
)
DEFAULT_MODEL = "claude-sonnet-4-20250514"


class Assessment(BaseModel):
    """One model's verdict on a document (what the assess step asks each model for)."""

    score: int = Field(ge=1, le=10, description="quality from 1 (poor) to 10 (excellent)")
    label: str = Field(description="poor, fair, good or excellent")
    reason: str = Field(default="", description="why, in one sentence")


def _closed_schema() -> dict[str, Any]:
    schema = Assessment.model_json_schema()
    for prop in schema["properties"].values():
        prop.pop("default", None)
    return {**schema, "additionalProperties": False, "required": list(schema["properties"])}


_STRICT_SCHEMA = _closed_schema()
_TOOL_SCHEMA = Assessment.model_json_schema()
_clients: dict[str, Any] = {}


def _anthropic() -> Any:
    if "anthropic" not in _clients:
        import anthropic

        _clients["anthropic"] = anthropic.AsyncAnthropic(
            api_key=os.environ["ANTHROPIC_API_KEY"],
            base_url=os.environ["ANTHROPIC_BASE_URL"],
            max_retries=0,
        )
    return _clients["anthropic"]


def _openai() -> Any:
    if "openai" not in _clients:
        import openai

        _clients["openai"] = openai.AsyncOpenAI(
            api_key=os.environ["OPENAI_API_KEY"],
            base_url=os.environ["OPENAI_BASE_URL"],
            max_retries=0,
        )
    return _clients["openai"]


async def close_clients() -> None:
    for client in _clients.values():
        await client.close()
    _clients.clear()


async def _text(model: str, system: str | None, user: str, max_tokens: int) -> str:
    if model.startswith("claude-"):
        extra = {"system": system} if system else {}
        reply = await _anthropic().messages.create(
            model=model,
            max_tokens=max_tokens,
            messages=[{"role": "user", "content": user}],
            **extra,
        )
        return "".join(b.text for b in reply.content if b.type == "text")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    completion = await _openai().chat.completions.create(
        model=model, messages=messages, max_completion_tokens=max_tokens
    )
    return completion.choices[0].message.content or ""


@activity.defn(name="plain_parse")
async def parse(req: dict[str, Any]) -> dict[str, Any]:
    text = str(req.get("text", ""))
    sections = [s.strip() for s in re.split(r"\n\s*\n", text) if s.strip()]
    return {"doc_id": req.get("doc_id"), "sections": sections, "words": len(text.split())}


@activity.defn(name="plain_assess")
async def assess(req: dict[str, Any]) -> dict[str, Any]:
    model = req["model"]
    document = "\n\n".join(req["parsed"]["sections"])
    if model.startswith("claude-"):
        reply = await _anthropic().messages.create(
            model=model,
            max_tokens=200,
            system=ASSESS_PROMPT,
            messages=[{"role": "user", "content": document}],
            tools=[
                {
                    "name": "Assessment",
                    "description": Assessment.__doc__,
                    "input_schema": _TOOL_SCHEMA,
                }
            ],
            tool_choice={"type": "tool", "name": "Assessment"},
        )
        block = next(b for b in reply.content if b.type == "tool_use")
        verdict = Assessment.model_validate(block.input)
    else:
        completion = await _openai().chat.completions.create(
            model=model,
            max_completion_tokens=200,
            messages=[
                {"role": "system", "content": ASSESS_PROMPT},
                {"role": "user", "content": document},
            ],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "Assessment", "schema": _STRICT_SCHEMA, "strict": True},
            },
        )
        verdict = Assessment.model_validate_json(completion.choices[0].message.content or "")
    return {"model": model, **verdict.model_dump(mode="json")}


@activity.defn(name="plain_synthesize")
async def synthesize(req: dict[str, Any]) -> dict[str, Any]:
    by_model: dict[str, dict[str, Any]] = req["by_model"]
    scores = [r["score"] for r in by_model.values() if isinstance(r.get("score"), int | float)]
    labels = Counter(r.get("label") for r in by_model.values())
    winner, votes = labels.most_common(1)[0]
    summary = "\n".join(f"- {m}: {r.get('score')} ({r.get('label')})" for m, r in by_model.items())
    note = await _text(
        req["model"], "Merge reviewers' verdicts into one sentence.", summary, max_tokens=120
    )
    return {
        "consensus_score": statistics.median(scores) if scores else None,
        "consensus_label": winner,
        "agreement": round(votes / len(by_model), 3),
        "by_model": {m: r.get("score") for m, r in by_model.items()},
        "note": note,
    }


@activity.defn(name="plain_report")
async def report(req: dict[str, Any]) -> dict[str, Any]:
    synthesis = req["synthesis"]
    lines = [
        "# Document quality report",
        "",
        f"Consensus score **{synthesis['consensus_score']}** ({synthesis['consensus_label']}).",
    ]
    verdict = await _text(
        DEFAULT_MODEL,
        None,
        "Write a one-line verdict for:\n" + "\n".join(lines),
        max_tokens=80,
    )
    return {"markdown": "\n".join([*lines, "", verdict])}


ACTIVITIES = [parse, assess, synthesize, report]
