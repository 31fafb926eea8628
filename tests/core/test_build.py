"""Flow building and validation: everything here fails before anything reaches Temporal."""

from __future__ import annotations

import datetime
import json

import pytest

import baton_temporal as baton
from baton_temporal import FlowError, StepDefinitionError

from .steps import timed


def diamond() -> baton.Flow:
    return (
        baton.new(workflow_name="brief", workflow_id="brief-1")
        .add("fetch", timed, {"url": "https://example.org"})
        .add("summarize", timed, deps=["fetch"])
        .add("keywords", timed, deps=["fetch"])
        .add("credibility", timed, deps=["fetch"], ignore_failed=True)
        .add("compile", timed, deps=["summarize", "keywords", "credibility"])
    )


def test_flow_is_immutable_and_add_returns_a_new_flow() -> None:
    empty = baton.new(workflow_name="x")
    one = empty.add("a", timed)
    assert empty.step_names == []
    assert one.step_names == ["a"]


def test_default_workflow_id_is_a_fresh_uuid() -> None:
    a, b = baton.new(workflow_name="x"), baton.new(workflow_name="x")
    assert a.workflow_id != b.workflow_id and len(a.workflow_id) == 36


def test_pipe_passes_the_flow_first() -> None:
    def add_two(flow: baton.Flow, first: str, *, second: str) -> baton.Flow:
        return flow.add(first, timed).add(second, timed, deps=[first])

    flow = baton.new(workflow_name="x").pipe(add_two, "a", second="b")
    assert flow.step_names == ["a", "b"]
    assert flow.node("b").deps == ("a",)


def test_duplicate_step_name() -> None:
    with pytest.raises(FlowError, match="already has a step named 'a'"):
        baton.new(workflow_name="x").add("a", timed).add("a", timed)


def test_unknown_dependency_is_named_with_a_suggestion() -> None:
    flow = baton.new(workflow_name="x").add("parse", timed).add("b", timed, deps=["pars"])
    with pytest.raises(FlowError, match=r"'b' depends on 'pars'.*did you mean 'parse'"):
        flow.validate()


def test_cycle_is_named() -> None:
    flow = (
        baton.new(workflow_name="x")
        .add("a", timed, deps=["c"])
        .add("b", timed, deps=["a"])
        .add("c", timed, deps=["b"])
    )
    with pytest.raises(
        FlowError, match=r"cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"
    ):
        flow.to_json()


def test_self_dependency() -> None:
    with pytest.raises(FlowError, match="depends on itself"):
        baton.new(workflow_name="x").add("a", timed, deps=["a"]).validate()


@pytest.mark.parametrize("name", ["", "1abc", "has space", "dot.ted", "x" * 101, None, 5])
def test_bad_step_names(name: object) -> None:
    with pytest.raises(FlowError, match="step name"):
        baton.new(workflow_name="x").add(name, timed)  # type: ignore[arg-type]


def test_non_json_args_name_the_key_path() -> None:
    with pytest.raises(FlowError, match=r"args\['doc'\]\['when'\] is a datetime"):
        baton.new(workflow_name="x").add("a", timed, {"doc": {"when": datetime.datetime.now()}})
    with pytest.raises(FlowError, match=r"args\['xs'\]\[1\] is nan"):
        baton.new(workflow_name="x").add("a", timed, {"xs": [1.0, float("nan")]})
    with pytest.raises(FlowError, match="non-string key 3"):
        baton.new(workflow_name="x").add("a", timed, {"m": {3: "x"}})


def test_plain_function_is_not_a_step() -> None:
    async def parse(job: baton.Job) -> dict:
        return {}

    with pytest.raises(StepDefinitionError, match="decorate it with @baton.step"):
        baton.new(workflow_name="x").add("a", parse)  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match="expected a @baton.step function"):
        baton.new(workflow_name="x").add("a", 42)  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match="not a step"):
        baton.BatonPlugin(steps=[parse])  # type: ignore[list-item]


def test_step_function_must_take_the_job() -> None:
    with pytest.raises(TypeError, match="exactly one argument"):

        @baton.step
        async def two(job: baton.Job, extra: int) -> dict:  # type: ignore[misc]
            return {}


def test_deps_given_as_a_string() -> None:
    with pytest.raises(FlowError, match=r"write deps=\['a'\]"):
        baton.new(workflow_name="x").add("a", timed).add("b", timed, deps="a")  # type: ignore[arg-type]


def test_bad_new_arguments() -> None:
    with pytest.raises(FlowError, match="workflow_name"):
        baton.new(workflow_name="")
    with pytest.raises(FlowError, match="max_concurrency"):
        baton.new(workflow_name="x", max_concurrency=0)


def test_quorum_larger_than_deps() -> None:
    flow = baton.new(workflow_name="x").add("a", timed).add("b", timed, deps=["a"], quorum=2)
    with pytest.raises(FlowError, match="quorum=2 but only 1 dependencies"):
        flow.validate()


def test_empty_flow_cannot_be_serialised() -> None:
    with pytest.raises(FlowError, match="at least one step"):
        baton.Flow.from_json({"baton_flow": 1, "workflow_name": "x", "steps": []})


def test_json_round_trip_keeps_everything() -> None:
    flow = diamond()
    text = flow.to_json()
    again = baton.Flow.from_json(text)
    assert again == flow
    data = json.loads(text)
    assert data["baton_flow"] == baton.SCHEMA_VERSION
    assert [s["name"] for s in data["steps"]] == flow.step_names
    assert data["steps"][3]["ignore_failed"] is True
    assert data["steps"][0]["step"] == "timed"


def test_from_json_errors() -> None:
    with pytest.raises(FlowError, match="malformed at line 1"):
        baton.Flow.from_json("{not json")
    with pytest.raises(FlowError, match="unsupported flow schema version 7"):
        baton.Flow.from_json({"baton_flow": 7, "workflow_name": "x", "steps": []})
    with pytest.raises(FlowError, match=r"steps\.0\.bogus: Extra inputs"):
        baton.Flow.from_json(
            {
                "baton_flow": 1,
                "workflow_name": "x",
                "steps": [{"name": "a", "step": "t", "bogus": 1}],
            }
        )
    with pytest.raises(FlowError, match="must be a JSON object"):
        baton.Flow.from_json("[1, 2]")


def test_step_options_round_trip() -> None:
    from datetime import timedelta

    from temporalio.common import RetryPolicy

    flow = baton.new(workflow_name="x").add(
        "a",
        timed,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_attempts=3),
        task_queue="gpu",
        local=True,
    )
    opts = baton.StepOptions.from_json(flow.node("a").options)
    assert opts.start_to_close_timeout == timedelta(seconds=30)
    assert opts.retry_policy is not None and opts.retry_policy.maximum_attempts == 3
    assert opts.task_queue == "gpu" and opts.local is True


async def test_get_result_only_reads_dependencies() -> None:
    job = baton.Job(
        step="compile", args={}, workflow_id="w", workflow_name="n", results={"a": {"v": 1}}
    )
    assert baton.get_result(job, "a") == {"v": 1}
    assert baton.get_all_results(job) == {"a": {"v": 1}}
    with pytest.raises(
        baton.NotADependencyError, match=r"not among its dependencies' results \['a'\]"
    ):
        baton.get_result(job, "b")
    # A step can be called directly for unit tests.
    assert (await timed(job))["saw"] == ["a"]
