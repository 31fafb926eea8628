"""The seed page's example app: parse a document, assess it with one or several models,
synthesize the assessments, write a report.

Run a worker with these steps::

    baton worker --steps baton_temporal.examples.seed

and start either flow from Python (:func:`analysis_flow`, :func:`quality_flow`) or as
JSON (``baton start flow.json``). The LLM calls go through :func:`baton.call_llm`, so
their tokens and cost land in the ledger, per step and per model.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

import baton_temporal as baton
from baton_temporal import multi_model

__all__ = [
    "ASSESS_PROMPT",
    "DEFAULT_MODEL",
    "SEED_MODELS",
    "STEPS",
    "Assessment",
    "analysis_flow",
    "assess",
    "parse_doc",
    "quality_flow",
    "report",
    "synthesize_assessments",
]

DEFAULT_MODEL = "claude-sonnet-4-20250514"
SEED_MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"]

ASSESS_PROMPT = (
    "You review documents. Rate the document's quality from 1 (poor) to 10 (excellent), "
    "label it poor, fair, good or excellent, and give the reason in one sentence."
)


class Assessment(BaseModel):
    """One model's verdict on a document (what the assess step asks each model for)."""

    score: int = Field(ge=1, le=10, description="quality from 1 (poor) to 10 (excellent)")
    label: str = Field(description="poor, fair, good or excellent")
    reason: str = Field(default="", description="why, in one sentence")


@baton.step
async def parse_doc(job: baton.Job) -> dict[str, Any]:
    """Split the document into sections (paragraphs) and count words. No LLM call."""
    text = str(job.args.get("text", ""))
    sections = [s.strip() for s in re.split(r"\n\s*\n", text) if s.strip()]
    return {
        "doc_id": job.args.get("doc_id"),
        "sections": sections,
        "words": len(text.split()),
    }


@baton.step
async def assess(job: baton.Job) -> dict[str, Any]:
    """Ask this step's model for a quality score of the parsed document."""
    model = multi_model.model_for(job, DEFAULT_MODEL)
    parsed = baton.get_result(job, "parse")
    document = "\n\n".join(parsed["sections"])
    # A validated Assessment: the provider's structured output (or forced tool use),
    # with a bad reply sent back to the model with the validation error.
    verdict = await baton.call_llm(
        job,
        [
            {"role": "system", "content": ASSESS_PROMPT},
            {"role": "user", "content": document},
        ],
        model=model,
        max_tokens=200,
        output_type=Assessment,
    )
    return {"model": model, **verdict.model_dump(mode="json")}


@baton.step
async def synthesize_assessments(job: baton.Job) -> dict[str, Any]:
    """Combine the models' assessments: median score, majority label (without a majority:
    the label of the median score), and one model's written consensus."""
    by_model = multi_model.collect_fan_results(job)
    median = multi_model.median_of(by_model, "score")
    vote = multi_model.majority_vote(by_model, "label")
    label = vote["winner"]
    if vote["agreement"] <= 0.5:
        # No label has a majority (say poor, fair, excellent): a tie-break by model order
        # could pair the median score with another model's label. Take the label of the
        # model that gave the median score instead.
        label = next(
            (r.get("label") for r in by_model.values() if r.get("score") == median["median"]),
            label,
        )
    summary = "\n".join(f"- {m}: {r.get('score')} ({r.get('label')})" for m, r in by_model.items())
    reply = await baton.call_llm(
        job,
        [
            {"role": "system", "content": "Merge reviewers' verdicts into one sentence."},
            {"role": "user", "content": summary},
        ],
        model=multi_model.model_for(job, DEFAULT_MODEL),
        max_tokens=120,
    )
    return {
        "consensus_score": median["median"],
        "consensus_label": label,
        "agreement": vote["agreement"],
        "by_model": {m: r.get("score") for m, r in by_model.items()},
        "note": reply.text,
    }


@baton.step
async def report(job: baton.Job) -> dict[str, Any]:
    """Write a short Markdown report from whatever the step depends on."""
    upstream = baton.get_all_results(job)
    lines = ["# Document quality report", ""]
    for name, result in upstream.items():
        if "consensus_score" in result:
            lines.append(
                f"Consensus score **{result['consensus_score']}** "
                f"({result['consensus_label']}, agreement {result['agreement']:.0%})."
            )
            for model, score in result["by_model"].items():
                lines.append(f"- {model}: {score}")
        elif "score" in result:
            lines.append(
                f"{name}: score {result['score']} ({result['label']}) by {result['model']}"
            )
    reply = await baton.call_llm(
        job,
        [{"role": "user", "content": "Write a one-line verdict for:\n" + "\n".join(lines)}],
        model=multi_model.model_for(job, DEFAULT_MODEL),
        max_tokens=80,
    )
    lines += ["", reply.text]
    return {"markdown": "\n".join(lines)}


def analysis_flow(text: str, *, models: dict[str, str] | None = None) -> baton.Flow:
    """The seed's per-step-model flow: parse -> assess -> report."""
    return (
        baton.new(workflow_name="analysis")
        .pipe(
            multi_model.configure,
            models
            or {
                "parse": "claude-sonnet-4-20250514",
                "assess": "claude-opus-4-20250514",
                "report": "claude-sonnet-4-20250514",
            },
        )
        .add("parse", parse_doc, {"text": text})
        .add("assess", assess, deps=["parse"])
        .add("report", report, deps=["assess"])
    )


def quality_flow(
    text: str,
    *,
    models: list[str] | None = None,
    doc_id: str = "doc-123",
    quorum: int | None = None,
    workflow_id: str | None = None,
) -> baton.Flow:
    """The seed's fan-out flow: parse -> assess on every model -> synthesis -> report."""
    models = models or SEED_MODELS
    return (
        baton.new(workflow_name="multi-model-quality", workflow_id=workflow_id)
        .add("parse", parse_doc, {"text": text, "doc_id": doc_id})
        .pipe(
            multi_model.fan_out,
            "assess",
            assess,
            models=models,
            args={"doc_id": doc_id},
            deps=["parse"],
            synthesize_with=synthesize_assessments,
            synthesize_model="claude-opus-4-20250514"
            if "claude-opus-4-20250514" in models
            else None,
            quorum=quorum,
        )
        .add("report", report, deps=["assess_synthesis"])
    )


STEPS = [parse_doc, assess, synthesize_assessments, report]
