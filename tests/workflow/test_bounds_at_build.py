"""Bounds refused while a flow is built or read, before anything reaches Temporal.

Each test checks the exception type and the fix its message names. The same bounds
are checked again by the flow workflow (test_every_run_ends.py).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from temporalio.common import RetryPolicy

import baton_temporal as baton
from baton_temporal.flow import FlowError, StepOptions, find_non_json, parse_flow
from baton_temporal.flow._limits import INT32_MAX, MAX_DURATION_SECONDS, MAX_ID_BYTES
from baton_temporal.flow._options import LEGACY_RETRY_BASE
from baton_temporal.flow._spec import BoolNumberError

from .test_every_run_ends import bool_numbers


@baton.step
async def ok(job: baton.Job) -> dict:
    return {}


def one_step(**add: Any) -> baton.Flow:
    return baton.new(workflow_name="bounds").add("a", ok, **add)


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"workflow_name": "x" * (MAX_ID_BYTES + 1)}, "at most 1000 bytes"),
        ({"workflow_name": "é" * 501}, "1,002 bytes long"),
        ({"workflow_name": "brief", "workflow_id": "a\nb"}, "remove them"),
        ({"workflow_name": "brief", "workflow_id": "\ud800"}, "not valid UTF-8"),
        ({"workflow_name": "brief", "max_concurrency": 10**6}, "from 1 to 2,000"),
        ({"workflow_name": "brief", "max_concurrency": True}, "from 1 to 2,000"),
    ],
)
def test_new_refuses_what_temporal_would(kwargs: dict, fix: str) -> None:
    with pytest.raises(FlowError, match=fix):
        baton.new(**kwargs)


BAD_RETRIES = [
    (RetryPolicy(maximum_attempts=INT32_MAX + 1), "Temporal stores it as an int32"),
    (RetryPolicy(maximum_attempts=-1), r"use 1\.\.2,147,483,647"),
    (
        RetryPolicy(initial_interval=timedelta(seconds=10), maximum_interval=timedelta(seconds=1)),
        "make maximum_interval >= initial_interval",
    ),
    (RetryPolicy(backoff_coefficient=0.5), "use a number >= 1"),
    (RetryPolicy(backoff_coefficient=float("inf")), "use a number >= 1"),
    (RetryPolicy(backoff_coefficient=float("nan")), "use a number >= 1"),
    (RetryPolicy(initial_interval=timedelta(days=300 * 366)), "250 years"),
    (RetryPolicy(initial_interval=timedelta(seconds=-1)), r"seconds >= 0"),
    (RetryPolicy(non_retryable_error_types=["x" * 1001]), "at most 1000 bytes"),
    (
        RetryPolicy(non_retryable_error_types=["TemporalTimeout:Soon"]),
        "names no timeout type Temporal knows; use one of 'TemporalTimeout:StartToClose'",
    ),
    ("three times", "use a temporalio.common.RetryPolicy"),
]


@pytest.mark.parametrize(("policy", "fix"), BAD_RETRIES)
def test_retry_policies_temporal_refuses_are_refused_when_added(policy: Any, fix: str) -> None:
    with pytest.raises(FlowError, match=fix) as info:
        one_step(retry_policy=policy)
    assert str(info.value).startswith("step 'a': bad step options")


@pytest.mark.parametrize(("policy", "fix"), BAD_RETRIES[:3])
def test_bad_step_defaults_are_refused_at_decoration(policy: Any, fix: str) -> None:
    with pytest.raises(FlowError, match=fix):

        @baton.step(retry_policy=policy)
        async def never(job: baton.Job) -> dict:
            return {}


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({"start_to_close_timeout": timedelta(0)}, r"seconds > 0"),
        ({"start_to_close_timeout": timedelta(days=10**6)}, "beyond Temporal's longest"),
        ({"start_to_close_timeout": 60}, "use a datetime.timedelta"),
        ({"heartbeat_timeout": timedelta(seconds=-5)}, r"seconds > 0"),
        ({"task_queue": "/_sys/x"}, "reserves for its own queues"),
        ({"task_queue": "q" * 1001}, "at most 1000 bytes"),
        ({"task_queue": "queue\n"}, "surrounding whitespace"),
        ({"local": "yes"}, "use True or False"),
    ],
)
def test_step_options_out_of_bounds(options: dict, fix: str) -> None:
    with pytest.raises(FlowError, match=fix):
        StepOptions(**options)


def test_timeouts_that_could_never_apply_are_refused_when_added() -> None:
    with pytest.raises(FlowError, match="could never fire; make it shorter"):
        one_step(
            options=StepOptions(
                start_to_close_timeout=timedelta(seconds=5),
                heartbeat_timeout=timedelta(seconds=60),
            )
        )
    with pytest.raises(FlowError, match="bounds all attempts together; make it shorter"):
        one_step(
            options=StepOptions(
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(seconds=5),
            )
        )


def cyclic() -> dict:
    loop: dict[str, Any] = {"a": []}
    loop["a"].append(loop)
    return loop


def deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        ({"x": deep(150)}, "nests deeper than 100 levels; flatten the data"),
        ({"x": deep(100_000)}, "nests deeper than 100 levels"),
        (cyclic(), r"args\['a'\]\[0\]\['a'\] contains itself \(a cycle\)"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"\udfff": 1}, "a key with a lone surrogate"),
        ({"x": 10**5000}, "integer too long for JSON"),
        ({"x": float("-inf")}, "is -inf"),
    ],
)
def test_args_json_cannot_hold_are_refused(args: dict, fix: str) -> None:
    with pytest.raises(FlowError, match=fix):
        baton.new(workflow_name="bounds").add("a", ok, args)


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("a\n", "is not valid"),  # "$" matched before a trailing newline; fullmatch does not
        ("étape", "is not valid"),
        ("a" * 101, "at most 100 characters"),
    ],
)
def test_step_names(name: str, fix: str) -> None:
    with pytest.raises(FlowError, match=fix):
        baton.new(workflow_name="bounds").add(name, ok)


def test_step_references_temporal_would_refuse() -> None:
    with pytest.raises(FlowError, match="at most 1000 bytes"):
        baton.new(workflow_name="bounds").add("a", "s" * 1001)
    with pytest.raises(FlowError, match="control characters"):
        baton.new(workflow_name="bounds").add("a", "ok\tthen")


def test_json_walk_is_iterative_and_names_the_path() -> None:
    assert find_non_json(deep(1_000_000)) is not None  # no RecursionError
    assert find_non_json({"a": [1, {"b": set()}]}, "r") == "r['a'][1]['b'] is a set"
    shared = {"k": 1}
    assert find_non_json({"x": shared, "y": shared}) is None  # shared, not a cycle
    assert find_non_json(deep(100)) is None


def chain_json(n: int, *, cycle: bool = False) -> str:
    steps = [
        {"name": f"s{i}", "step": "ok", "deps": [f"s{i + 1}"] if i < n - 1 else []}
        for i in range(n)
    ]
    if cycle:
        steps[-1]["deps"] = ["s0"]
    return json.dumps({"baton_flow": 1, "workflow_name": "chain", "steps": steps})


def test_a_long_chain_listed_dependents_first_is_read_without_recursion() -> None:
    flow = baton.Flow.from_json(chain_json(5000))
    assert len(flow.step_names) == 5000
    with pytest.raises(FlowError, match="the flow has a cycle: s0 -> s4999 -> s4998"):
        baton.Flow.from_json(chain_json(5000, cycle=True))


def test_from_json_refuses_what_json_loads_cannot_read() -> None:
    deep_text = (
        '{"baton_flow": 1, "workflow_name": "w", "steps": [{"name": "a", "step": "ok", "args": {"k": '
        + "[" * 5000
        + "]" * 5000
        + "}}]}"
    )
    with pytest.raises(FlowError, match="nests too deeply to read; step args may nest at most"):
        baton.Flow.from_json(deep_text)
    with pytest.raises(FlowError, match="cannot be read"):
        baton.Flow.from_json('{"baton_flow": 1, "n": ' + "9" * 5000 + "}")


@pytest.mark.parametrize(
    ("retry", "fix"),
    [
        ({"initial_interval": 10, "maximum_interval": 1}, "make maximum_interval >= initial"),
        ({"maximum_interval": 0.5}, "make maximum_interval >= initial_interval"),
        ({"maximum_attempts": 2**31}, "int32"),
        ({"backoff_coefficient": float("inf")}, "use e.g. 2.0"),
        ({"initial_interval": 1e11}, "250 years"),
    ],
)
def test_json_retry_specs_are_checked_when_read(retry: dict, fix: str) -> None:
    data = {
        "baton_flow": 1,
        "workflow_name": "w",
        "steps": [{"name": "a", "step": "ok", "options": {"retry": retry}}],
    }
    with pytest.raises(FlowError, match=fix):
        baton.Flow.from_json(data)
    with pytest.raises(FlowError, match=fix):
        StepOptions.from_json({"retry": retry})


def test_a_partial_retry_spec_merges_over_the_library_defaults() -> None:
    flow = baton.Flow.from_json(
        {
            "baton_flow": 1,
            "workflow_name": "w",
            "steps": [{"name": "a", "step": "ok", "options": {"retry": {"initial_interval": 2}}}],
        }
    )
    policy = StepOptions.from_json(flow.node("a").options).retry_policy
    assert policy is not None
    assert policy.maximum_attempts == baton.flow.DEFAULT_RETRY.maximum_attempts == 10
    assert policy.initial_interval == timedelta(seconds=2)
    assert policy.maximum_interval == timedelta(seconds=60)
    # A longer initial interval than the default maximum raises the maximum with it.
    slow = StepOptions.from_json({"retry": {"initial_interval": 120}}).retry_policy
    assert slow is not None and slow.maximum_interval == timedelta(seconds=120)
    # Said explicitly, "no limit" is kept.
    forever = StepOptions.from_json({"retry": {"maximum_attempts": 0}}).retry_policy
    assert forever is not None and forever.maximum_attempts == 0
    # Runs started before this release replay with what they had: no attempt limit.
    legacy = StepOptions.from_json(
        {"retry": {"initial_interval": 2}},
        retry_defaults=LEGACY_RETRY_BASE,
        legacy=True,
    ).retry_policy
    assert legacy is not None and legacy.maximum_attempts == 0
    assert legacy.maximum_interval is None


def test_a_retry_policy_written_by_the_builder_reads_back_the_same() -> None:
    policy = RetryPolicy(initial_interval=timedelta(seconds=3), maximum_attempts=4)
    flow = baton.Flow.from_json(one_step(retry_policy=policy).to_json())
    read = StepOptions.from_json(flow.node("a").options).retry_policy
    # Temporal's own default maximum (100 x initial) is written out, not left to merge.
    assert read == RetryPolicy(
        initial_interval=timedelta(seconds=3),
        maximum_interval=timedelta(seconds=300),
        maximum_attempts=4,
    )


def test_bounds_are_temporals() -> None:
    assert INT32_MAX == 2_147_483_647
    assert MAX_DURATION_SECONDS == 250 * 365 * 86400
    with pytest.raises(ValueError, match="invalid flow"):
        parse_flow({"baton_flow": 1, "workflow_name": "w", "steps": [{"name": "a", "step": ""}]})


def test_a_heartbeat_timeout_too_short_for_steps_is_refused_where_the_flow_is_built() -> None:
    # A step's keep-alive beats at most every 0.1 s: with a 0.05 s heartbeat timeout every
    # attempt would time out. Refused when added and when a flow file is started; the flow
    # workflow itself still reads such a flow (runs recorded before).
    fix = r"shorter than a step can heartbeat in .*use at least 0\.3 s"
    with pytest.raises(FlowError, match=fix):
        one_step(options=StepOptions(heartbeat_timeout=timedelta(seconds=0.05)))
    # Declared on a step: a warning only (a worker importing it after an upgrade still
    # starts and serves the runs in flight), and a flow that uses the step is refused.
    with pytest.warns(UserWarning, match=fix):

        @baton.step(heartbeat_timeout=timedelta(seconds=0.1))
        async def too_quick(job: baton.Job) -> dict:
            return {}

    with pytest.raises(FlowError, match=fix):
        baton.new(workflow_name="w").add("a", too_quick)

    data = one_step().to_dict()
    data["steps"][0]["options"] = {"heartbeat_timeout": 0.05}
    flow = baton.Flow.from_json(data)  # what the workflow reads: accepted
    with pytest.raises(FlowError, match=fix):
        flow.to_dict()  # what a start sends: refused
    # 0.3 s and up are fine.
    one_step(options=StepOptions(heartbeat_timeout=timedelta(seconds=0.3))).to_dict()


@pytest.mark.parametrize(
    ("name", "value", "data"),
    [(name, value, data) for _, name, value, data in bool_numbers()],
    ids=[f"{where}.{name}" for where, name, _, _ in bool_numbers()],
)
def test_a_json_boolean_for_a_number_is_refused_when_the_flow_is_read(
    name: str, value: str, data: dict[str, Any]
) -> None:
    # Read as 1 (true) or 0 (false) before: "heartbeat_timeout": true became one second.
    with pytest.raises(FlowError, match=f"{name}={value} is a JSON boolean") as err:
        baton.Flow.from_json(json.dumps(data))
    assert "write the number itself" in str(err.value)
    with pytest.raises(BoolNumberError):
        parse_flow(data)


def test_runs_started_before_the_refusal_read_the_boolean_as_a_number() -> None:
    # What the flow workflow does when it replays such a run (tests/histories/61d1fac).
    data = {
        "baton_flow": 1,
        "workflow_name": "w",
        "steps": [{"name": "a", "step": "s", "options": {"heartbeat_timeout": True}}],
    }
    spec = parse_flow(data, bools_as_numbers=True)
    assert spec.steps[0].options == {"heartbeat_timeout": 1.0}


@pytest.mark.parametrize("quorum", [True, False, 0, "2", 2.5])
def test_a_quorum_that_is_not_a_whole_number_is_refused_by_the_builder(quorum: Any) -> None:
    # quorum=True ran as quorum 1 before, and quorum=0 got pydantic's multi-line dump.
    flow = baton.new(workflow_name="w").add("a", ok).add("b", ok)
    with pytest.raises(FlowError, match=rf"step 'c': quorum is {re.escape(repr(quorum))}; "):
        flow.add("c", ok, deps=["a", "b"], quorum=quorum)
    assert flow.add("c", ok, deps=["a", "b"], quorum=2).to_dict()["steps"][2]["quorum"] == 2


def test_a_step_field_pydantic_refuses_gets_one_line_naming_it() -> None:
    with pytest.raises(FlowError) as err:
        baton.new(workflow_name="w").add("a", ok, ignore_failed="maybe")  # type: ignore[arg-type]
    assert str(err.value).startswith("step 'a': ignore_failed: Input should be a valid boolean")
    assert "validation error for" not in str(err.value)
    assert "errors.pydantic.dev" not in str(err.value)


def test_every_json_boolean_for_a_number_is_named_in_one_round() -> None:
    # A boolean at one level stops pydantic before the levels below it: they are named too,
    # with their paths, so that one round of fixes is enough.
    data = {
        "baton_flow": 1,
        "workflow_name": "w",
        "max_concurrency": True,
        "steps": [
            {
                "name": "a",
                "step": "s",
                "options": {"heartbeat_timeout": True, "retry": {"maximum_attempts": False}},
            },
            {"name": "b", "step": "s", "deps": ["a"], "quorum": True},
        ],
    }
    with pytest.raises(BoolNumberError) as err:
        parse_flow(data)
    assert (
        "max_concurrency=true, steps.0.options.heartbeat_timeout=true, "
        "steps.0.options.retry.maximum_attempts=false, steps.1.quorum=true are JSON booleans "
        "where numbers belong (they would be read as 1 or 0); write the number itself"
    ) in str(err.value)
    data["max_concurrency"] = 2  # the options name their own retry's
    with pytest.raises(BoolNumberError, match="heartbeat_timeout=true, retry.maximum_attempts"):
        parse_flow(data)
