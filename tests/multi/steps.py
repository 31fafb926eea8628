"""Steps for the multi-model tests: a fake "assessment" whose score depends on the model."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio.common import RetryPolicy

import baton_temporal as baton
from baton_temporal import multi_model

SCORES = {"claude-sonnet-4-20250514": 7, "claude-opus-4-20250514": 8, "gpt-4o": 6, "o3": 9}


@baton.step
async def parse_doc(job: baton.Job) -> dict:
    return {"sections": job.args["text"].split(". "), "args": dict(job.args)}


@baton.step(
    retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=50))
)
async def assess(job: baton.Job) -> dict:
    model = multi_model.model_for(job, "claude-sonnet-4-20250514")
    if model in job.args.get("down", []):
        raise ConnectionError(f"provider of {model} is down")
    start = time.time()
    await asyncio.sleep(job.args.get("sleep", 0))
    return {
        "model": model,
        "score": SCORES.get(model, 5),
        "label": "good" if SCORES.get(model, 5) >= 7 else "poor",
        "sections": len(baton.get_result(job, "parse")["sections"])
        if "parse" in job.results
        else 0,
        "args": dict(job.args),
        "start": start,
        "end": time.time(),
    }


@baton.step
async def synthesize_assessments(job: baton.Job) -> dict:
    by_model = multi_model.collect_fan_results(job)
    return {
        "by_model": by_model,
        "median": multi_model.median_of(by_model, "score"),
        "vote": multi_model.majority_vote(by_model, "label"),
        "model": multi_model.model_for(job, "none"),
        "args": dict(job.args),
    }


@baton.step
async def report(job: baton.Job) -> dict:
    upstream = baton.get_all_results(job)
    return {"from": sorted(upstream), "model": multi_model.model_for(job, "default-model")}


ALL = [parse_doc, assess, synthesize_assessments, report]
