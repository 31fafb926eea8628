"""Structured output on the wire: each provider's request format, through the real SDK
clients to the stand-in, and the errors a user meets with types the providers cannot take."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from baton_temporal.llm import LLMClients, LLMConfig, complete, resolve_provider
from baton_temporal.llm._structured import call_structured, plan_for
from baton_temporal.testing import Fault, StandIn

pytestmark = pytest.mark.timeout(60)


class Verdict(BaseModel):
    """A document's quality."""

    score: int = Field(ge=1, le=10)
    label: Literal["poor", "fair", "good", "excellent"]
    reason: str = ""


class Node(BaseModel):
    """A tree: a recursive model."""

    name: str
    children: list[Node] = []


class Tally(BaseModel):
    """A free-form dict: OpenAI's strict mode cannot take it."""

    counts: dict[str, int]


class Pairs(BaseModel):
    """Tuples: a JSON schema with prefixItems (one schema per position)."""

    span: tuple[int, int]
    labelled: list[tuple[str, float]]
    rest: tuple[bool, ...]


class Empties(BaseModel):
    """Arrays that must stay empty: maxItems 0."""

    nothing: tuple[()]
    none_yet: list[int] = Field(max_length=0)


async def ask(
    model: str,
    output_type: type[BaseModel],
    config: LLMConfig,
    clients: LLMClients,
    **kw: Any,
) -> Any:
    provider, name = resolve_provider(model)

    async def call(messages: Any, **params: Any) -> Any:
        return await complete(messages, model=model, config=config, clients=clients, **params)

    return await call_structured(
        call,
        [{"role": "user", "content": "Rate this document: it is fine."}],
        output_type=output_type,
        provider=provider,
        model=name,
        label=model,
        **kw,
    )


# model -> (what the request must carry, where the reply's JSON is)
WIRE = {
    "gpt-4o": "response_format",
    "claude-sonnet-4-20250514": "anthropic_tool",
    "claude-sonnet-4-6": "output_config",
    "openai-compatible:llama3.2": "openai_tool",
}


@pytest.mark.parametrize("model", list(WIRE))
async def test_each_provider_gets_its_own_wire_format_and_a_validated_instance(
    model: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    verdict = await ask(model, Verdict, config, clients)
    assert isinstance(verdict, Verdict) and 1 <= verdict.score <= 10
    body = standin.requests[-1].body
    kind = WIRE[model]
    if kind == "response_format":
        spec = body["response_format"]["json_schema"]
        assert body["response_format"]["type"] == "json_schema"
        assert spec["name"] == "Verdict" and spec["strict"] is True
        assert spec["schema"]["additionalProperties"] is False
        assert sorted(spec["schema"]["required"]) == ["label", "reason", "score"]
        assert "tools" not in body
    elif kind == "output_config":
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["output_config"]["format"]["schema"]["additionalProperties"] is False
        # Bounds Anthropic's format refuses move into the description; pydantic keeps them.
        score = body["output_config"]["format"]["schema"]["properties"]["score"]
        assert "minimum" not in score and "minimum=1" in score["description"]
    elif kind == "anthropic_tool":
        assert body["tool_choice"] == {"type": "tool", "name": "Verdict"}
        assert body["tools"][0]["input_schema"]["properties"]["score"]["maximum"] == 10
        assert body["tools"][0]["description"] == "A document's quality."
    else:
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Verdict"}}
        assert body["tools"][0]["function"]["parameters"]["required"] == ["score", "label"]
    # The stand-in's plain answer for the same prompt has the same score: coherent.
    assert standin.billed_calls() == 1


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6", "openai-compatible:llama3.2"])
async def test_a_recursive_model_round_trips(
    model: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    tree = await ask(model, Node, config, clients)
    assert isinstance(tree, Node) and isinstance(tree.children[0], Node)
    body = standin.requests[-1].body
    if model == "claude-sonnet-4-6":
        # Anthropic's native format takes no recursive schema: forced tool use instead.
        assert "output_config" not in body and body["tool_choice"]["name"] == "Node"
    if model == "gpt-4o":
        schema = body["response_format"]["json_schema"]["schema"]
        assert schema["type"] == "object" and "Node" in schema["$defs"]


@pytest.mark.parametrize("model", list(WIRE))
async def test_tuple_fields_round_trip(
    model: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    pairs = await ask(model, Pairs, config, clients)
    assert isinstance(pairs, Pairs)
    assert [type(v) for v in pairs.span] == [int, int]
    assert [type(v) for v in pairs.labelled[0]] == [str, float]
    assert standin.billed_calls() == 1  # valid at once: no second (billed) attempt


# Not Anthropic's native format: it takes no maxItems (moved into the description).
@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-20250514", "openai-compatible:m"])
async def test_the_stand_in_keeps_arrays_within_max_items(
    model: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    empties = await ask(model, Empties, config, clients)
    assert empties == Empties(nothing=(), none_yet=[])
    assert standin.billed_calls() == 1  # valid at once


async def test_a_dict_field_is_sent_non_strict_to_openai(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    tally = await ask("gpt-4o", Tally, config, clients)
    assert isinstance(tally, Tally)
    spec = standin.requests[-1].body["response_format"]["json_schema"]
    assert spec["strict"] is False


async def test_a_bad_reply_goes_back_with_the_error_and_the_next_one_is_used(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    standin.script("gpt-4o", [Fault.invalid_output({"score": 11, "label": "meh"}), Fault.prose()])
    verdict = await ask("gpt-4o", Verdict, config, clients)
    assert isinstance(verdict, Verdict)
    assert standin.billed_calls() == 3  # every attempt was a billed call
    third = standin.requests[-1].body["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "user", "assistant", "user"]
    assert json.loads(third[1]["content"]) == {"score": 11, "label": "meh"}
    assert "score: Input should be less than or equal to 10" in third[2]["content"]
    assert third[3]["content"] == "I think the document is quite good."
    assert "Invalid JSON" in third[4]["content"]


async def test_prose_instead_of_the_forced_tool_exhausts_retries_with_a_clear_error(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    model = "claude-sonnet-4-20250514"
    standin.script(model, [Fault.prose()] * 2)
    with pytest.raises(ApplicationError) as caught:
        await ask(model, Verdict, config, clients, retries=1)
    err = caught.value
    assert err.type == "StructuredOutputInvalid" and err.non_retryable
    assert model in err.message and "not a call of the tool 'Verdict'" in err.message
    assert "Fix: raise output_retries" in err.message
    assert standin.billed_calls() == 2


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("gpt-4o", {}),
        ("gpt-4o", {"api": "responses"}),  # stops with "max_output_tokens"
    ],
)
async def test_a_cut_off_reply_says_to_raise_max_tokens(
    standin: StandIn, config: LLMConfig, clients: LLMClients, model: str, params: dict
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await ask(model, Verdict, config, clients, retries=0, params={"max_tokens": 3, **params})
    assert caught.value.type == "StructuredOutputInvalid"
    assert "the reply was cut off at max_tokens: raise max_tokens" in caught.value.message


@dataclasses.dataclass
class NotAModel:
    score: int


class Opaque:
    pass


class HoldsOpaque(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


class Wrapped(BaseModel):
    items: list[int]


@pytest.mark.parametrize(
    ("output_type", "says"),
    [
        (NotAModel, "must be a pydantic model class"),
        (list[int], "must be a pydantic model class"),
        (HoldsOpaque, "has no JSON schema"),
    ],
)
def test_types_without_an_object_schema_are_refused_with_the_fix(
    output_type: Any, says: str
) -> None:
    with pytest.raises(ApplicationError) as caught:
        plan_for(output_type, provider="openai", model="gpt-4o")
    assert caught.value.type == "InvalidOutputType" and caught.value.non_retryable
    assert says in caught.value.message
    assert "BaseModel" in caught.value.message or "JSON types" in caught.value.message


def test_each_plan_gets_its_own_copy_of_the_cached_schema() -> None:
    # The schema is generated once per class; a plan edited in place (as the strict and
    # closed forms are built) must not change what the next call sends.
    first = plan_for(Verdict, provider="openai-compatible", model="m")
    first.schema["properties"].clear()
    first.schema["title"] = "edited"
    second = plan_for(Verdict, provider="openai-compatible", model="m")
    assert second.schema == Verdict.model_json_schema()
    # A type that has no schema still fails every time, not only the first.
    for _ in range(2):
        with pytest.raises(ApplicationError, match="has no JSON schema"):
            plan_for(HoldsOpaque, provider="openai", model="gpt-4o")


def _dated_examples(schema: dict[str, Any]) -> None:
    # A json_schema_extra callable: pydantic leaves what it adds as it is.
    schema["examples"] = [
        {"due": date(2026, 1, 31), "ref": uuid.UUID(int=7), "price": Decimal("1.50")}
    ]


class Dated(BaseModel):
    """An invoice; its schema's examples hold a date, a UUID and a Decimal."""

    model_config = ConfigDict(json_schema_extra=_dated_examples)

    due: str
    ref: str
    price: float


class NotJsonExtra(BaseModel):
    """Its schema's examples hold an object nothing can send as JSON."""

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(examples=[object()]))

    name: str


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-20250514"])
async def test_a_schema_extra_with_dates_goes_out_as_the_sdk_sends_them(
    model: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    # The SDK clients send dates, UUIDs and Decimals in a schema as JSON strings; caching
    # the schema as JSON text must not turn that into a TypeError.
    dated = await ask(model, Dated, config, clients)
    assert isinstance(dated, Dated)
    sent = json.dumps(standin.requests[-1].body)
    assert '"2026-01-31"' in sent and str(uuid.UUID(int=7)) in sent
    # Each call gets a fresh schema, the same each time.
    assert plan_for(Dated, provider="openai", model="gpt-4o").schema == (
        plan_for(Dated, provider="openai", model="gpt-4o").schema
    )


def test_a_schema_extra_that_is_not_json_names_the_fix() -> None:
    for _ in range(2):  # not cached: the same error every time
        with pytest.raises(ApplicationError) as caught:
            plan_for(NotJsonExtra, provider="openai", model="gpt-4o")
        assert caught.value.type == "InvalidOutputType" and caught.value.non_retryable
        assert "NotJsonExtra" in caught.value.message
        assert "only JSON values" in caught.value.message
        assert "json_schema_extra" in caught.value.message


async def test_clashing_request_fields_and_impossible_modes_are_refused(
    config: LLMConfig, clients: LLMClients
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await ask("gpt-4o", Verdict, config, clients, params={"response_format": {}})
    assert caught.value.type == "InvalidLLMRequest"
    assert "drop it from the call" in caught.value.message
    with pytest.raises(ApplicationError) as caught:
        plan_for(Verdict, provider="anthropic", model="claude-sonnet-4-20250514", mode="native")
    assert caught.value.type == "InvalidLLMRequest" and "output_mode='auto' or 'tool'" in (
        caught.value.message
    )
    with pytest.raises(ApplicationError) as caught:
        await ask("gpt-4o", Verdict, config, clients, retries=-1)
    assert "output_retries must be a whole number" in caught.value.message


async def test_the_standin_refuses_a_strict_schema_that_is_not_closed_as_openai_does(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    schema = Verdict.model_json_schema()  # no additionalProperties: false
    fmt = {"type": "json_schema", "json_schema": {"name": "V", "schema": schema, "strict": True}}
    with pytest.raises(ApplicationError) as caught:
        await complete(
            [{"role": "user", "content": "x"}],
            model="gpt-4o",
            config=config,
            clients=clients,
            response_format=fmt,
        )
    assert caught.value.type == "ProviderRejected"
    assert "'additionalProperties' is required to be supplied" in caught.value.message
    assert standin.billed_calls() == 0


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pets(BaseModel):
    """Pets, a union tagged by kind (pydantic writes a one-of schema for it)."""

    pets: list[Annotated[Cat | Dog, Field(discriminator="kind")]]
    favourite: Annotated[Cat | Dog, Field(discriminator="kind")] | None = None


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6"])
async def test_a_discriminated_union_is_sent_as_any_of(
    model: str, standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    assert "oneOf" in json.dumps(Pets.model_json_schema())
    pets = await ask(model, Pets, config, clients)
    assert isinstance(pets, Pets) and pets.pets and pets.pets[0].kind == "cat"
    sent = json.dumps(standin.requests[-1].body)
    assert "oneOf" not in sent and "discriminator" not in sent and "anyOf" in sent
    # Strict for OpenAI still: the union's variants are closed objects.
    if model == "gpt-4o":
        assert standin.requests[-1].body["response_format"]["json_schema"]["strict"] is True


# model, call params, output_mode -> the request's path and the field that asks for output
OTHER_WAYS = [
    ("gpt-4o", {"api": "responses"}, "auto", "/v1/responses", "text"),
    ("o3-pro", {}, "auto", "/v1/responses", "text"),  # served only by the Responses API
    ("gpt-4o", {"api": "responses", "stream": True}, "auto", "/v1/responses", "text"),
    ("o3-pro", {"stream": True}, "tool", "/v1/responses", "tools"),
    ("gpt-4o", {"api": "responses"}, "tool", "/v1/responses", "tools"),
    ("gpt-4o", {"stream": True}, "tool", "/v1/chat/completions", "tools"),
    ("openai-compatible:llama3.2", {"stream": True}, "auto", "/v1/chat/completions", "tools"),
    ("claude-sonnet-4-6", {"stream": True}, "auto", "/v1/messages", "output_config"),
    ("claude-sonnet-4-20250514", {"stream": True}, "auto", "/v1/messages", "tools"),
]


@pytest.mark.parametrize(("model", "params", "mode", "path", "field"), OTHER_WAYS)
async def test_structured_output_through_the_responses_api_and_streams(
    model: str,
    params: dict[str, Any],
    mode: Any,
    path: str,
    field: str,
    standin: StandIn,
    config: LLMConfig,
    clients: LLMClients,
) -> None:
    verdict = await ask(model, Verdict, config, clients, params=params, mode=mode)
    assert isinstance(verdict, Verdict) and 1 <= verdict.score <= 10
    assert len(standin.requests) == 1  # valid the first time: no retry
    sent = standin.requests[-1]
    assert sent.path == path and field in sent.body
    # The Responses API refuses response_format (moved to text.format) and takes flat tools.
    assert "response_format" not in sent.body or path != "/v1/responses"
    if path == "/v1/responses" and field == "text":
        fmt = sent.body["text"]["format"]
        assert fmt["type"] == "json_schema" and fmt["name"] == "Verdict" and fmt["strict"]
    if path == "/v1/responses" and field == "tools":
        assert sent.body["tools"][0]["name"] == "Verdict"
        assert sent.body["tool_choice"] == {"type": "function", "name": "Verdict"}


async def test_a_response_format_asked_of_the_responses_api_goes_as_text_format(
    standin: StandIn, config: LLMConfig, clients: LLMClients
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "V", "schema": {"type": "object"}}}
    reply = await complete(
        [{"role": "user", "content": "hi"}],
        model="gpt-4o",
        config=config,
        clients=clients,
        api="responses",
        response_format=fmt,
    )
    assert json.loads(reply.text) == {}
    assert standin.requests[-1].body["text"] == {
        "format": {"type": "json_schema", **fmt["json_schema"]}
    }
    with pytest.raises(ApplicationError) as caught:
        await complete(
            [{"role": "user", "content": "hi"}],
            model="gpt-4o",
            config=config,
            clients=clients,
            api="responses",
            response_format=fmt,
            text={"format": {"type": "text"}},
        )
    assert caught.value.type == "InvalidLLMRequest"
    assert "response_format= or text=, not both" in str(caught.value)


class Shortlist(BaseModel):
    """Constraints Anthropic's native format refuses: described, and pydantic checks them."""

    picks: list[str] = Field(min_length=2)
    tags: set[str]
    home: str = Field(json_schema_extra={"format": "path"})
    day: str = Field(json_schema_extra={"format": "date"})


def test_anthropic_native_schema_describes_what_the_format_refuses() -> None:
    plan = plan_for(Shortlist, provider="anthropic", model="claude-sonnet-4-6")
    assert plan.mode == "json_schema"
    fields = plan.schema["properties"]
    assert "minItems" not in fields["picks"] and "minItems=2" in fields["picks"]["description"]
    assert "uniqueItems" not in fields["tags"] and "uniqueItems" in fields["tags"]["description"]
    assert "format" not in fields["home"] and "format=path" in fields["home"]["description"]
    assert fields["day"]["format"] == "date"  # a format Anthropic takes stays
