"""Steps of the batch tests: one LLM call per document, through call_llm."""

from __future__ import annotations

import json
import time

import baton_temporal as baton
from baton_temporal import multi_model


@baton.step
async def assess_doc(job: baton.Job) -> dict:
    model = multi_model.model_for(job, "gpt-4o")
    reply = await baton.call_llm(
        job,
        [
            {"role": "system", "content": "Score the document from 1 to 10."},
            {"role": "user", "content": job.args["text"]},
        ],
        model=model,
        max_tokens=50,
    )
    return {"score": json.loads(reply.text)["score"], "tier": reply.usage.service_tier}


@baton.step
async def pick_best(job: baton.Job) -> dict:
    by_model = multi_model.collect_fan_results(job)
    return {"models": sorted(by_model), "best": max(r["score"] for r in by_model.values())}


@baton.step
async def drifting(job: baton.Job) -> dict:
    # Wrong on purpose: the prompt differs on every run of the step.
    prompt = f"Score this at {time.monotonic_ns()}"
    reply = await baton.call_llm(job, [{"role": "user", "content": prompt}], model="gpt-4o")
    return {"text": reply.text}


STEPS = [assess_doc, pick_best, drifting]
