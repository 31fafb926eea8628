"""The OpenAI Responses API through the real openai SDK client and the stand-in: chosen by
model or by ``api=``, usage normalised as for chat, the raw output items kept, and the
ledger's cost equal to what genai-prices computes from the raw reply."""

from __future__ import annotations

from typing import Any, get_args

import genai_prices
import pytest
from openai.types.shared import ChatModel, ResponsesModel
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.ledger import LedgerStore
from baton_temporal.ledger._schema import quantize_cost
from baton_temporal.llm import LLMClients, LLMConfig, complete, resolve_provider
from baton_temporal.llm._complete import check_call_options
from baton_temporal.llm._responses import choose_api, is_responses_only
from baton_temporal.testing import StandIn
from tests.ledger_support import ledger_rows

from . import steps

SYSTEM = {"role": "system", "content": "You grade documents. Answer in JSON, briefly."}
USER = {"role": "user", "content": "Grade: revenue grew by a tenth; costs fell."}


def _literals(alias: Any) -> set[str]:
    found: set[str] = set()
    for arg in get_args(alias):
        if isinstance(arg, str):
            found.add(arg)
        else:
            found |= _literals(arg)
    return found


def test_every_responses_only_model_the_openai_sdk_names_is_in_the_table() -> None:
    only = _literals(ResponsesModel) - _literals(ChatModel)
    assert only, "the openai SDK lists no Responses-only models any more"
    missing = sorted(m for m in only if not is_responses_only(m))
    assert missing == []
    for model in only:
        assert resolve_provider(model)[0] == "openai", model
    # Chat models stay on Chat Completions unless asked.
    for model in ("gpt-4o", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-4.1"):
        assert choose_api("openai", model, None) == "chat", model
    assert choose_api("openai", "o3-pro-2025-06-10", None) == "responses"
    assert choose_api("openai", "gpt-4o", "responses") == "responses"


@pytest.mark.parametrize(
    ("model", "api", "fix"),
    [
        ("gpt-4o", "respones", "use api='responses' or api='chat'"),
        ("claude-sonnet-4-20250514", "responses", "leave api= out"),
        ("o3-pro", "chat", "only through the Responses API; use api='responses'"),
        ("gpt-4o", "messages", "use api='responses' or api='chat'"),
        ("gpt-4o", 3, "is not an API"),
    ],
)
def test_a_bad_api_is_refused_before_anything_is_sent(model: str, api: Any, fix: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        check_call_options(model, {"api": api})
    assert caught.value.type == "InvalidLLMRequest" and caught.value.non_retryable
    assert fix in caught.value.message


async def test_responses_replies_carry_text_items_and_normalised_usage(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    # o3-pro goes to /v1/responses by itself; gpt-4o when asked.
    first = await complete([SYSTEM, USER], model="o3-pro", config=config, clients=clients)
    again = await complete([SYSTEM, USER], model="o3-pro", config=config, clients=clients)
    asked = await complete(
        [SYSTEM, USER],
        model="gpt-4o",
        api="responses",
        max_tokens=5,
        config=config,
        clients=clients,
    )
    paths = [r.path for r in standin.requests]
    assert paths == ["/v1/responses"] * 3
    sent = standin.requests[2].body
    assert sent["instructions"] == SYSTEM["content"]
    assert sent["input"] == [USER] and sent["max_output_tokens"] == 5
    assert "max_tokens" not in sent and "messages" not in sent

    assert first.api == "responses" and not first.streamed
    assert first.text == standin.requests[0].text and first.stop_reason == "completed"
    kinds = [item["type"] for item in first.output_items]
    assert kinds == ["reasoning", "message"]  # o3-pro reasons; the raw items are kept
    reported = standin.requests[1].usage
    assert reported is not None
    assert again.usage.input_tokens == reported["input_tokens"]
    assert again.usage.cache_read_tokens == reported["input_tokens_details"]["cached_tokens"] > 0
    assert again.usage.output_tokens == reported["output_tokens"]
    assert again.usage.reasoning_tokens == reported["output_tokens_details"]["reasoning_tokens"]
    assert 0 < again.usage.reasoning_tokens < again.usage.output_tokens
    # Cut short by max_output_tokens: the stop reason says so.
    assert asked.stop_reason == "max_output_tokens" and len(asked.text) <= 20


async def test_a_failed_response_is_billed_and_retried(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    from baton_temporal.llm._complete import BilledReplyError
    from baton_temporal.testing import Fault

    reply = {
        "id": "resp_x",
        "object": "response",
        "model": "o3-pro",
        "status": "failed",
        "error": {"code": "server_error", "message": "The model crashed"},
        "output": [],
        "usage": {"input_tokens": 40, "output_tokens": 7, "output_tokens_details": {}},
    }
    standin.script("o3-pro", [Fault.reply(reply)])
    with pytest.raises(BilledReplyError) as caught:
        await complete([USER], model="o3-pro", config=config, clients=clients)
    assert caught.value.type == "ProviderRetryable" and not caught.value.non_retryable
    assert "server_error: The model crashed" in caught.value.message
    assert caught.value.usage is not None and caught.value.usage.input_tokens == 40


async def test_the_ledger_prices_a_responses_call_as_genai_prices_prices_its_reply(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    flow = baton.new(workflow_name="responses").add("grade", steps.ask, {"model": "o3-pro"})
    async with baton_worker(steps.ALL, ledger=store, llm=standin.config()):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["grade"]["api"] == "responses"
    assert result.results["grade"]["items"] == 2
    (row,) = await ledger_rows(store, flow.workflow_id)
    (billed,) = standin.billed_requests()
    reply = {"model": "o3-pro", "usage": billed.usage}
    extracted = genai_prices.extract_usage(reply, provider_id="openai", api_flavor="responses")
    expected = extracted.calc_price(genai_request_timestamp=row["requested_at"]).total_price
    assert row["status"] == "ok" and row["cost_usd"] == quantize_cost(expected) > 0
    assert row["reasoning_tokens"] == billed.usage["output_tokens_details"]["reasoning_tokens"]
    assert row["input_tokens"] == billed.usage["input_tokens"]


async def test_a_bad_api_fails_the_flow_at_once_and_records_nothing(
    client: Client, task_queue: str, baton_worker, store: LedgerStore, standin: StandIn
) -> None:
    flow = baton.new(workflow_name="bad-api").add(
        "grade", steps.ask, {"model": "o3-pro", "params": {"api": "chat"}}
    )
    async with baton_worker(steps.ALL, ledger=store, llm=standin.config()):
        with pytest.raises(WorkflowFailureError) as caught:
            await flow.run(client, task_queue=task_queue)
    cause = caught.value.cause
    assert "InvalidLLMRequest" in str(cause) and "use api='responses'" in str(cause)
    assert standin.requests == [] and await ledger_rows(store, flow.workflow_id) == []
