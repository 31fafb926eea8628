"""Budget settings that are refused before anything runs: type and fix in the message."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.pricing import PriceQuote, TablePricer
from baton_temporal.steps._budget_guard import call_cost, worst_case
from baton_temporal.usage import LLMUsage
from baton_temporal.worker import WorkerSettings
from baton_temporal.workflow._budget import (
    MAX_OPS,
    BudgetBook,
    carry_problem,
    check_request,
    check_requests,
)
from baton_temporal.workflow._continue import split_input

FIX = 'positive number of US dollars, e.g. 5 or "2.50"'


def flow_json(**fields: object) -> str:
    data = {"baton_flow": 1, "workflow_name": "b", "steps": [{"name": "a", "step": "a"}]}
    data.update(fields)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-1, "a cap must be above 0"),
        (0, "a cap must be above 0"),
        ("NaN", "not a finite amount"),
        ("Infinity", "not a finite amount"),
        ("1e12", "above the largest cap"),
        ("1e-9", "which no call fits"),
        ("ten", "not a number"),
        (True, "not a number"),
        ([5], "not a number"),
        ("9" * 50, "not an amount"),
    ],
)
def test_bad_flow_json_budgets_name_the_fix(value: object, why: str) -> None:
    with pytest.raises(baton.FlowError) as err:
        baton.Flow.from_json(flow_json(budget_usd=value))
    assert why in str(err.value) and "budget_usd" in str(err.value)
    step = {"name": "a", "step": "a", "options": {"budget_usd": value}}
    with pytest.raises(baton.FlowError) as err:
        baton.Flow.from_json(flow_json(steps=[step]))
    assert why in str(err.value) and "options.budget_usd" in str(err.value)


def test_good_budgets_round_trip_exactly() -> None:
    flow = baton.new(workflow_name="b", budget_usd=0.1).add(
        "a", "a", options=baton.StepOptions(budget_usd="0.05")
    )
    data = json.loads(flow.to_json())
    assert data["budget_usd"] == "0.1" and data["steps"][0]["options"]["budget_usd"] == "0.05"
    again = baton.Flow.from_json(flow.to_json())
    assert again.spec.budget_usd == Decimal("0.1")
    assert baton.Flow.from_json(flow_json(budget_usd=3)).spec.budget_usd == Decimal(3)


def test_builder_and_step_options_refuse_bad_budgets() -> None:
    with pytest.raises(baton.FlowError) as err:
        baton.new(workflow_name="b", budget_usd=float("nan"))
    assert "baton.new(): budget_usd is nan" in str(err.value) and FIX in str(err.value)
    with pytest.raises(baton.FlowError) as err:
        baton.StepOptions(budget_usd=-2)
    assert "a cap must be above 0" in str(err.value) and FIX in str(err.value)


def test_worker_default_from_the_environment() -> None:
    assert WorkerSettings.from_env({"BATON_BUDGET_USD": "7.5"}).budget_usd == Decimal("7.5")
    assert WorkerSettings.from_env({}).budget_usd is None
    with pytest.raises(ValueError) as err:
        WorkerSettings.from_env({"BATON_BUDGET_USD": "-3"})
    assert "BATON_BUDGET_USD is '-3'" in str(err.value) and "unset it" in str(err.value)
    with pytest.raises(ValueError):
        baton.BatonPlugin(budget_usd="nan")


def test_forged_budget_requests_and_carries_are_refused() -> None:
    for bad in (
        None,
        {"key": "k", "step": "s", "worst_usd": "-1"},
        {"key": "k", "step": "s", "worst_usd": "NaN"},
        {"key": "k", "step": "s", "worst_usd": 1.5},
        {"key": "k", "step": "s", "worst_usd": "1e9"},
        {"key": "", "step": "s", "worst_usd": "1"},
        {"key": "k", "step": "s", "worst_usd": "1", "default_cap_usd": "-1"},
    ):
        with pytest.raises(ValueError):
            check_request(bad)
    with pytest.raises(ValueError):
        check_request({"key": "k", "step": "s", "cost_usd": "-0.1"}, settle=True)
    ok = {"op": "reserve", "key": "k", "step": "s", "worst_usd": "1"}
    check_requests({"ops": [ok, {"op": "settle", "key": "k", "step": "s", "cost_usd": "0.5"}]})
    for batch in ({"ops": []}, {"ops": [ok] * (MAX_OPS + 1)}, {"ops": [{**ok, "op": "x"}]}, []):
        with pytest.raises(ValueError):
            check_requests(batch)
    assert carry_problem({"spent_usd": "1", "steps": {"a": "x"}})
    assert carry_problem({"spent_usd": "1", "extra": 1})
    with pytest.raises(ValueError) as err:
        split_input({"baton_continue": 1, "flow": {}, "budget": {"spent_usd": "-5"}})
    assert "continue-as-new input is malformed" in str(err.value)


def test_the_book_never_grants_past_the_cap() -> None:
    book = BudgetBook()
    book.start(Decimal("1.00"), {})
    grants = [book.reserve({"key": f"k{i}", "step": "s", "worst_usd": "0.30"}) for i in range(5)]
    assert [g["ok"] for g in grants] == [True, True, True, False, False]
    # Asked again (a retried update), a granted call keeps its one hold.
    assert book.reserve({"key": "k0", "step": "s", "worst_usd": "0.30"})["ok"]
    assert book.held_total == Decimal("0.90")
    book.settle({"key": "k0", "step": "s", "cost_usd": "0.10"})
    book.settle({"key": "k1", "step": "s", "cost_usd": None})  # lost: counts its worst case
    book.settle({"key": "k1", "step": "s", "cost_usd": "0"})  # settled twice: no change
    assert (book.spent, book.held_total) == (Decimal("0.40"), Decimal("0.30"))
    carried = book.to_carry()
    assert carried is not None and carried["spent_usd"] == "0.70"
    assert carry_problem(carried) is None


class _Broken:
    def cost(self, usage: object) -> object:
        raise ZeroDivisionError("bad table")


class _Absurd:
    def cost(self, usage: object) -> PriceQuote:
        return PriceQuote.model_construct(
            cost_usd=Decimal("NaN"), price_model="m", price_version="v", note=None
        )


def test_a_broken_or_absurd_pricer_is_named_not_retried() -> None:
    messages = [{"role": "user", "content": "hi"}]
    for pricer, why in ((_Broken(), "failed to price"), (_Absurd(), "outside 0..")):
        with pytest.raises(ApplicationError) as err:
            worst_case(pricer, "gpt-4o", messages, {"max_tokens": 10})  # type: ignore[arg-type]
        assert err.value.type == "PricingFailed" and err.value.non_retryable
        assert why in err.value.message and "fix" in err.value.message
    # A settled cost the book would refuse keeps the call at its worst case instead.
    assert call_cost(_Absurd(), LLMUsage(model="gpt-4o")) is None  # type: ignore[arg-type]


def test_the_worst_case_bounds_the_prompt_by_its_bytes() -> None:
    pricer = TablePricer({"gpt-4o": {"input": "100000", "output": "0"}})  # $0.10 a token
    text = "日本語のテキスト"  # 8 characters, 24 bytes in UTF-8, at most 24 tokens
    worst = worst_case(pricer, "gpt-4o", [{"role": "user", "content": text}], {"max_tokens": 1})
    assert worst == Decimal(24 + 8) / 10
    with pytest.raises(baton.BudgetExceeded) as err:
        worst_case(pricer, "gpt-4o", [{"role": "user", "content": text}], {})
    assert "needs max_tokens=..." in err.value.message
    # Anthropic's default reply bound is priced when max_tokens is left out.
    claude = TablePricer({"claude-sonnet-4-20250514": {"input": "0", "output": "100000"}})
    assert worst_case(claude, "claude-sonnet-4-20250514", [], {}) == Decimal(1024) / 10


def test_every_text_parameter_counts_in_the_worst_case() -> None:
    """Prompt a provider bills that arrives as a parameter (the Responses API's
    instructions, Anthropic's structured-output schema) is bounded too."""
    pricer = TablePricer({"gpt-4o": {"input": "100000", "output": "0"}})  # $0.10 a token
    base = worst_case(pricer, "gpt-4o", [], {"max_tokens": 1})
    for params in (
        {"instructions": "x" * 100},
        {"output_config": {"format": {"type": "json_schema", "schema": {"a": "x" * 100}}}},
        {"text": {"format": {"type": "json_schema", "schema": {"a": "x" * 100}}}},
    ):
        assert worst_case(pricer, "gpt-4o", [], {"max_tokens": 1, **params}) >= base + 10
    # Numbers and call_llm's own switches are not prompt.
    switches = {"max_tokens": 1, "temperature": 0.5, "api": "responses", "stream": True}
    assert worst_case(pricer, "gpt-4o", [], switches) == base
