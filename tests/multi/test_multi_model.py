"""The seed page's multi-model examples, line by line, on a real dev server."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal import FlowError, multi_model

from .handwritten import MODELS, HandwrittenQuality
from .steps import ALL, assess, parse_doc, report, synthesize_assessments

TEXT = "Revenue grew. Costs fell. Outlook is stable"


def analysis_flow() -> baton.Flow:
    return (
        baton.new(workflow_name="analysis")
        .pipe(
            multi_model.configure,
            {
                "parse": "claude-sonnet-4-20250514",
                "assess": "claude-opus-4-20250514",
                "report": "claude-sonnet-4-20250514",
            },
        )
        .add("parse", parse_doc, {"text": TEXT})
        .add("assess", assess, deps=["parse"])
        .add("report", report, deps=["assess"])
    )


def quality_flow(**overrides: object) -> baton.Flow:
    options: dict = {
        "models": MODELS,
        "args": {"doc_id": "doc-123", "sleep": 0.4},
        "deps": ["parse"],
        "synthesize_with": synthesize_assessments,
        "synthesize_model": "claude-opus-4-20250514",
        **overrides,
    }
    return (
        baton.new(workflow_name="multi-model-quality")
        .add("parse", parse_doc, {"text": TEXT})
        .pipe(multi_model.fan_out, "assess", assess, **options)
        .add("report", report, deps=["assess_synthesis"])
    )


# -- names and graph (no server) --------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "short"),
    [
        ("claude-sonnet-4-20250514", "sonnet_4"),
        ("claude-opus-4-20250514", "opus_4"),
        ("gpt-4o", "gpt_4o"),
        ("o3", "o3"),
        ("claude-3-5-haiku-20241022", "3_5_haiku"),
        ("gpt-4o-2024-08-06", "gpt_4o"),
        ("openai:gpt-4.1-mini", "gpt_4_1_mini"),
    ],
)
def test_short_names(model: str, short: str) -> None:
    assert multi_model.short_name(model) == short


def test_seed_fan_out_graph() -> None:
    flow = quality_flow()
    assert flow.step_names == [
        "parse",
        "assess_sonnet_4",
        "assess_opus_4",
        "assess_gpt_4o",
        "assess_synthesis",
        "report",
    ]
    expected_models = dict(zip(flow.step_names[1:4], MODELS, strict=True))
    for name, model in expected_models.items():
        node = flow.node(name)
        assert node.deps == ("parse",)
        assert node.step == "assess"
        assert node.args == {"doc_id": "doc-123", "sleep": 0.4, "workflow_model": model}
    synthesis = flow.node("assess_synthesis")
    assert synthesis.deps == ("assess_sonnet_4", "assess_opus_4", "assess_gpt_4o")
    assert synthesis.step == "synthesize_assessments"
    assert synthesis.args["workflow_model"] == "claude-opus-4-20250514"
    assert synthesis.args["fan_out_models"] == expected_models
    assert flow.node("report").deps == ("assess_synthesis",)
    assert flow.node("report").args == {}
    assert flow.node("parse").args == {"text": TEXT}


def test_synthesis_model_defaults_to_the_first_model_and_args_merge() -> None:
    flow = quality_flow(synthesize_model=None, synthesize_args={"style": "brief"})
    args = flow.node("assess_synthesis").args
    assert args["workflow_model"] == "claude-sonnet-4-20250514"
    assert args["style"] == "brief"


def test_without_synthesis_the_generated_names_are_easy_to_use() -> None:
    names = multi_model.fan_out_names("assess", MODELS)
    flow = (
        baton.new(workflow_name="x")
        .add("parse", parse_doc, {"text": TEXT})
        .pipe(multi_model.fan_out, "assess", assess, models=MODELS, deps=["parse"])
        .add("report", report, {"fan_out_models": {}}, deps=list(names.values()))
    )
    assert "assess_synthesis" not in flow.step_names
    assert multi_model.fan_out_models(flow, "assess") == {n: m for m, n in names.items()}


def test_model_map_injects_only_mapped_steps() -> None:
    flow = analysis_flow()
    assert flow.node("parse").args == {"text": TEXT, "workflow_model": "claude-sonnet-4-20250514"}
    assert flow.node("assess").args == {"workflow_model": "claude-opus-4-20250514"}
    plain = baton.new(workflow_name="analysis").add("other", parse_doc, {"text": TEXT, "n": [1, 2]})
    mapped = (
        baton.new(workflow_name="analysis")
        .pipe(multi_model.configure, {"parse": "gpt-4o"})
        .add("other", parse_doc, {"text": TEXT, "n": [1, 2]})
    )
    # A step outside the map is byte-for-byte what a plain add makes.
    assert mapped.node("other").model_dump_json() == plain.node("other").model_dump_json()


def test_explicit_workflow_model_in_args_wins() -> None:
    flow = (
        baton.new(workflow_name="x")
        .pipe(multi_model.configure, {"a": "gpt-4o"})
        .add("a", parse_doc, {"text": "t", "workflow_model": "o3"})
    )
    assert flow.node("a").args["workflow_model"] == "o3"


def test_configure_refuses_a_model_no_provider_serves() -> None:
    with pytest.raises(
        FlowError, match=r"model for 'parse': no provider is known for model 'mistral-large'"
    ):
        baton.new(workflow_name="x").pipe(multi_model.configure, {"parse": "mistral-large"})
    # A provider prefix routes any name.
    flow = baton.new(workflow_name="x").pipe(
        multi_model.configure, {"parse": "openai-compatible:mistral-large"}
    )
    assert flow.spec.models == {"parse": "openai-compatible:mistral-large"}


def test_configure_after_add_is_refused() -> None:
    flow = baton.new(workflow_name="x").add("parse", parse_doc, {"text": "t"})
    with pytest.raises(FlowError, match=r"configure\(\) names steps already added: \['parse'\]"):
        flow.pipe(multi_model.configure, {"parse": "gpt-4o"})
    # Naming only steps still to come is fine, and later steps get their model.
    later = flow.pipe(multi_model.configure, {"assess": "gpt-4o"}).add(
        "assess", assess, deps=["parse"]
    )
    assert later.node("assess").args == {"workflow_model": "gpt-4o"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"models": []}, "needs models=\\[...\\], a non-empty list"),
        ({"models": "gpt-4o"}, "models must be a list, not the string 'gpt-4o'"),
        ({"models": ["gpt-4o", "gpt-4o"]}, "model 'gpt-4o' is listed twice"),
        (
            {"models": ["gpt-4o", "gpt-4o-2024-08-06"]},
            "models 'gpt-4o' and 'gpt-4o-2024-08-06' would both be named 'assess_gpt_4o'; "
            "name them explicitly, e.g. names=",
        ),
        (
            {"models": ["gpt-4o"], "synthesise_with": report},
            "unknown option.*did you mean 'synthesize_with'",
        ),
        (
            {"models": ["gpt-4o"], "synthesize_model": "o3"},
            "synthesize_model has no effect without",
        ),
        (
            {"models": ["gpt-4o"], "synthesize_with": report, "quorum": 2},
            "quorum must be a whole number from 1 to 1",
        ),
        ({}, "needs models="),
        ({"models": [""]}, "is not a model string"),
        # Unknown models are refused when the flow is built, not when a step calls them.
        ({"models": ["gpt-4o", "llama3.2"]}, "no provider is known for model 'llama3.2'"),
        (
            {"models": ["gpt-4o"], "synthesize_with": report, "synthesize_model": "gemma"},
            "synthesize_model: no provider is known for model 'gemma'",
        ),
    ],
)
def test_fan_out_errors(options: dict, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        baton.new(workflow_name="x").add("parse", parse_doc).pipe(
            multi_model.fan_out, "assess", assess, **options
        )


def test_explicit_names_resolve_a_clash() -> None:
    flow = baton.new(workflow_name="x").pipe(
        multi_model.fan_out,
        "assess",
        assess,
        models=["gpt-4o", "gpt-4o-2024-08-06"],
        names={"gpt-4o-2024-08-06": "gpt_4o_aug"},
    )
    assert flow.step_names == ["assess_gpt_4o", "assess_gpt_4o_aug"]


def test_generated_name_clashing_with_an_existing_step() -> None:
    flow = baton.new(workflow_name="x").add("assess_gpt_4o", parse_doc)
    with pytest.raises(
        FlowError, match=r"would add steps \['assess_gpt_4o'\].*choose another base"
    ):
        flow.pipe(multi_model.fan_out, "assess", assess, models=["gpt-4o"])


def test_synthesis_helpers() -> None:
    by_model = {
        "a": {"score": 7, "label": "ok"},
        "b": {"score": 9, "label": "bad"},
        "c": {"label": "ok"},
    }
    median = multi_model.median_of(by_model, "score")
    assert median["median"] == 8 and median["missing"] == ["c"]
    vote = multi_model.majority_vote(by_model, "label")
    assert vote["winner"] == "ok" and vote["votes"] == {"ok": 2, "bad": 1}
    assert vote["agreement"] == pytest.approx(0.667)
    tie = multi_model.majority_vote({"x": {"l": "b"}, "y": {"l": "a"}}, "l")
    assert tie["winner"] == "b"  # ties go to the earliest model
    with pytest.raises(ValueError, match="no model returned a number in 'scor'"):
        multi_model.median_of(by_model, "scor")


# -- on the dev server ------------------------------------------------------------------


async def test_per_step_models_reach_the_steps(client, task_queue, baton_worker) -> None:
    async with baton_worker(ALL):
        result = await analysis_flow().run(client, task_queue=task_queue)
    assert result.results["assess"]["model"] == "claude-opus-4-20250514"
    assert result.results["report"]["model"] == "claude-sonnet-4-20250514"
    assert result.steps["assess"].model == "claude-opus-4-20250514"


async def test_seed_fan_out_end_to_end(client, task_queue, baton_worker) -> None:
    async with baton_worker(ALL):
        result = await quality_flow().run(client, task_queue=task_queue)
    r = result.results
    fan = [r["assess_sonnet_4"], r["assess_opus_4"], r["assess_gpt_4o"]]
    assert max(x["start"] for x in fan) < min(x["end"] for x in fan), "fan-out steps overlap"
    assert [x["model"] for x in fan] == MODELS
    assert all(x["args"]["doc_id"] == "doc-123" and x["sections"] == 3 for x in fan)
    synthesis = r["assess_synthesis"]
    assert set(synthesis["by_model"]) == set(MODELS)
    assert synthesis["by_model"]["gpt-4o"]["score"] == 6
    assert synthesis["median"]["median"] == 7
    assert synthesis["vote"]["winner"] == "good"
    assert synthesis["model"] == "claude-opus-4-20250514"
    assert r["report"]["from"] == ["assess_synthesis"]


async def test_handwritten_fan_out_matches_the_declared_one(
    client, task_queue, baton_worker
) -> None:
    async with baton_worker(ALL, workflows=[HandwrittenQuality]):
        by_hand = await client.execute_workflow(
            HandwrittenQuality.run, TEXT, id=str(uuid.uuid4()), task_queue=task_queue
        )
        declared = await quality_flow().run(client, task_queue=task_queue)
    assert set(by_hand["by_model"]) == set(MODELS)
    fan = list(by_hand["by_model"].values())
    assert max(x["start"] for x in fan) < min(x["end"] for x in fan)
    strip = lambda s: {k: v for k, v in s.items() if k not in ("by_model",)}  # noqa: E731
    assert (
        strip(by_hand["synthesis"])["median"]
        == strip(declared.results["assess_synthesis"])["median"]
    )
    assert (
        by_hand["synthesis"]["args"]["fan_out_models"]
        == declared.results["assess_synthesis"]["args"]["fan_out_models"]
    )
    assert {m: v["score"] for m, v in by_hand["synthesis"]["by_model"].items()} == {
        m: v["score"] for m, v in declared.results["assess_synthesis"]["by_model"].items()
    }


async def test_one_model_down_with_quorum_synthesis_runs_on_the_others(
    client, task_queue, baton_worker
) -> None:
    # The others take long enough for gpt-4o to fail for good first (else, still
    # retrying when the quorum is met, it would be cancelled as a straggler).
    flow = quality_flow(args={"down": ["gpt-4o"], "sleep": 3}, quorum=2)
    async with baton_worker(ALL):
        result = await flow.run(client, task_queue=task_queue)
    by_model = result.results["assess_synthesis"]["by_model"]
    assert set(by_model) == {"claude-sonnet-4-20250514", "claude-opus-4-20250514"}
    assert result.failed == ["assess_gpt_4o"]
    assert "provider of gpt-4o is down" in (result.steps["assess_gpt_4o"].error or "")
    assert result.results["report"]["from"] == ["assess_synthesis"]


async def test_one_model_down_without_quorum_cascades(client, task_queue, baton_worker) -> None:
    flow = quality_flow(args={"down": ["gpt-4o"]})
    async with baton_worker(ALL):
        with pytest.raises(WorkflowFailureError) as info:
            await flow.run(client, task_queue=task_queue)
    err = info.value.cause
    assert isinstance(err, ApplicationError)
    assert err.details[0] == {
        "failed": ["assess_gpt_4o"],
        "cancelled": ["assess_synthesis", "report"],
    }
    assert (
        "cancelled because a dependency did not complete: assess_synthesis, report" in err.message
    )


async def test_quorum_not_met_cancels_synthesis(client, task_queue, baton_worker) -> None:
    flow = quality_flow(args={"down": ["gpt-4o", "claude-opus-4-20250514"]}, quorum=2)
    async with baton_worker(ALL):
        with pytest.raises(WorkflowFailureError) as info:
            await flow.run(client, task_queue=task_queue)
    err = info.value.cause
    assert isinstance(err, ApplicationError)
    assert "cancelled" in err.message and "assess_synthesis" in err.details[0]["cancelled"]
