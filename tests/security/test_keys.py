"""API keys: malformed ones are refused before any request, without being quoted; and no
error path (401, header errors, connection errors, timeouts, retries) carries a key,
in any quoted form, into Temporal history, the worker log or the CLI's output.

Real parts: the anthropic/openai SDK clients against the provider stand-in, the dev
server, the ``baton`` program."""

from __future__ import annotations

import json
import logging
import sys
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

import baton_temporal as baton
from baton_temporal.llm import (
    INVALID_LLM_CONFIG,
    LLMClients,
    LLMConfig,
    LLMConfigError,
    complete,
    map_provider_error,
    redact,
)
from baton_temporal.testing import Fault, StandIn

from ..cli._util import clean_env, run_baton

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
TWO_TRIES = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=100))

# Characters a key picks up when pasted: each must be refused, none may be echoed.
MALFORMED = {
    "newline": "sk-planted-abcdef\n0123456789abcdef",
    "crlf": "sk-planted-abcdef\r\n0123456789abcdef",
    "nul": "sk-planted-abcdef\x000123456789abcdef",
    "space": "sk-planted-abcdef 0123456789abcdef",
    "tab": "sk-planted-abcdef\t0123456789abcdef",
    "zero-width space": "sk-planted-abcdef\u200b0123456789abcdef",
    "non-breaking space": "sk-planted-abcdef\u00a00123456789abcdef",
    "line separator": "sk-planted-abcdef\u20280123456789abcdef",
    "DEL": "sk-planted-abcdef\x7f0123456789abcdef",
    "escape": "sk-planted-abcdef\x1b[31m0123456789abcdef",
    "accented": "sk-planted-abcdéf0123456789abcdef",
}


def leaks(text: str, key: str) -> list[str]:
    """The quoted forms of ``key`` (or 12-character runs of them) found in ``text``."""
    forms = {
        "plain": key,
        "repr": repr(key)[1:-1],
        "bytes repr": repr(key.encode())[2:-1],
        "json": json.dumps(key)[1:-1],
        "url-encoded": urllib.parse.quote(key, safe=""),
    }
    found = [name for name, form in forms.items() if form in text]
    for piece in (key[:12], key[-12:], key[8:20]):
        if piece in text:
            found.append(f"part {piece!r}")
    return found


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn() as server:
        yield server


@baton.step(retry_policy=TWO_TRIES)
async def ask_model(job: baton.Job) -> dict:
    reply = await baton.call_llm(job, [{"role": "user", "content": "hi"}], model=job.args["model"])
    return {"text": reply.text}


# ---- refused when the configuration is built ------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_keys_are_refused_without_being_quoted(kind: str) -> None:
    key = MALFORMED[kind]
    for field, env in (
        ("openai_api_key", "OPENAI_API_KEY"),
        ("anthropic_api_key", "ANTHROPIC_API_KEY"),
        ("openai_compatible_api_key", "BATON_OPENAI_COMPATIBLE_API_KEY"),
    ):
        with pytest.raises(LLMConfigError) as info:
            LLMConfig(**{field: key})
        message = str(info.value)
        assert env in message and "copy the key again" in message
        assert not leaks(message + repr(info.value), key), message
        with pytest.raises(LLMConfigError) as info:
            LLMConfig.from_env({env: key})
        assert not leaks(str(info.value), key)
        with pytest.raises(LLMConfigError):
            LLMConfig(**{field: SecretStr(key)})


def test_a_trailing_newline_from_a_file_is_trimmed_not_refused() -> None:
    config = LLMConfig.from_env({"OPENAI_API_KEY": "sk-from-a-file-0123456789\n"})
    assert config.openai_api_key is not None
    assert config.openai_api_key.get_secret_value() == "sk-from-a-file-0123456789"


async def test_the_worker_programs_refuse_a_malformed_key_at_start() -> None:
    key = MALFORMED["newline"]
    env = clean_env(
        OPENAI_API_KEY=key,
        BATON_STEPS="baton_temporal.examples.seed",
        TEMPORAL_ADDRESS="127.0.0.1:1",
    )
    for ran in (
        await run_baton("worker", env=env, cwd=ROOT),
        await run_baton("-m", "workers.worker", env=env, cwd=ROOT, program=(sys.executable,)),
    ):
        assert ran.code == 2, ran
        assert "OPENAI_API_KEY" in ran.err and "line break" in ran.err
        assert not leaks(ran.out + ran.err, key), ran.err
        assert "Traceback" not in ran.err


# ---- refused before any request when a config skipped validation ---------------------------


async def test_a_config_that_skipped_validation_is_refused_by_the_clients(
    standin: StandIn,
) -> None:
    key = MALFORMED["nul"]
    config = standin.config().model_copy(update={"openai_api_key": SecretStr(key)})
    async with LLMClients() as clients:
        with pytest.raises(ApplicationError) as info:
            await complete([{"role": "user", "content": "hi"}], model="gpt-4o", config=config,
                           clients=clients)  # fmt: skip
    assert info.value.type == INVALID_LLM_CONFIG and info.value.non_retryable
    assert "OPENAI_API_KEY" in info.value.message and not leaks(info.value.message, key)
    assert standin.requests == []


@pytest.mark.parametrize("kind", ["newline", "crlf", "nul", "accented", "zero-width space"])
async def test_header_errors_of_the_real_sdks_are_final_and_unquoted(
    standin: StandIn, kind: str
) -> None:
    """The SDKs' own header errors (a key that reached them anyway, or a bad extra header)
    quote the header as a bytes repr; translated, they are not retried and quote nothing."""
    import anthropic
    import openai

    key = MALFORMED[kind]
    mapped_count = 0
    clients = [
        (
            "openai",
            openai.AsyncOpenAI(api_key=key, base_url=standin.openai_base_url, max_retries=0),
        ),
        ("anthropic", anthropic.AsyncAnthropic(api_key=key, base_url=standin.url, max_retries=0)),
    ]
    for provider, client in clients:
        try:
            if provider == "openai":
                await client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            else:
                await client.messages.create(
                    model="claude-sonnet-4-20250514",
                    max_tokens=10,
                    messages=[{"role": "user", "content": "hi"}],
                )
        except Exception as exc:  # what the SDK raised, passed on as complete() would
            mapped = map_provider_error(exc, provider=provider, model="m", secrets=[key])
        else:
            # An SDK that sent the request anyway: the provider then refuses the key.
            continue
        finally:
            await client.close()
        assert mapped is not None, f"{provider} raised something unmapped"
        assert mapped.type == INVALID_LLM_CONFIG and mapped.non_retryable, mapped
        assert "header is malformed" in mapped.message
        assert not leaks(mapped.message, key), mapped.message
        mapped_count += 1
    assert mapped_count >= 1  # at least openai's client refuses to send such a header


# ---- redaction of the forms an error may quote ------------------------------------------


def test_redaction_covers_quoted_encoded_and_partial_keys() -> None:
    key = "sk-planted+ab/cd=" + "0123456789abcdef" * 2
    texts = {
        "bytes repr": f"Illegal header value b'Bearer {key}'",
        "str repr": f"got {key!r}",
        "json": json.dumps({"key": key + "\n"}),
        "url-encoded": "GET /v1?key=" + urllib.parse.quote(key, safe=""),
        "form-encoded": "key=" + urllib.parse.quote_plus(key, safe=""),
        "clipped": f"Incorrect API key provided: {key[:22]}...",
        "tail": f"key ending {key[-14:]}",
    }
    for name, text in texts.items():
        out = redact(text, [key])
        assert "***" in out, name
        assert not leaks(out, key), (name, out)
    malformed = MALFORMED["newline"]
    out = redact(f"Illegal header value b'Bearer {malformed}'".encode().decode(), [malformed])
    out += redact(f"Illegal header value {('Bearer ' + malformed).encode()!r}", [malformed])
    assert not leaks(out, malformed), out
    # Ordinary words are left alone, and keys under 4 characters are not hunted.
    assert redact("the engine is overloaded", [key, "abc"]) == "the engine is overloaded"


# ---- every error path, end to end ---------------------------------------------------------


async def test_a_planted_key_never_leaks_on_any_error_path(
    client: Client, task_queue: str, baton_worker, standin: StandIn, caplog, tmp_path: Path
) -> None:
    planted = "sk-planted+x/y=" + uuid.uuid4().hex + "0f1e2d3c"
    config = standin.config(openai_api_key=planted, anthropic_api_key=planted, timeout_s=0.5)
    gpt, claude = "gpt-4o", "claude-sonnet-4-20250514"
    standin.script(gpt, [
        Fault.status(401, "Incorrect API key provided: {api_key}"),       # rejected: 401
        Fault.status(503, f"overloaded for {urllib.parse.quote(planted, safe='')}",
                     retry_after=0.1),                                    # retried: 503
        Fault.status(403, f"key {planted[:20]}... lacks access"),         # partial key
        Fault.reset(), Fault.reset(),                                     # connection errors
        Fault.slow(3), Fault.slow(3),                                     # timeouts
    ])  # fmt: skip
    standin.script(claude, [Fault.status(401, "invalid x-api-key {api_key}")])
    flows = {
        "401": baton.new(workflow_name="keys").add("a", ask_model, {"model": gpt}),
        "503 then 403": baton.new(workflow_name="keys").add("a", ask_model, {"model": gpt}),
        "reset": baton.new(workflow_name="keys").add("a", ask_model, {"model": gpt}),
        "timeout": baton.new(workflow_name="keys").add("a", ask_model, {"model": gpt}),
        "anthropic 401": baton.new(workflow_name="keys").add("a", ask_model, {"model": claude}),
    }
    caplog.set_level(logging.DEBUG)
    texts: dict[str, str] = {}
    env = clean_env(TEMPORAL_ADDRESS=client.service_client.config.target_host)
    async with baton_worker([ask_model], llm=config, ledger=False):
        for name, flow in flows.items():
            with pytest.raises(WorkflowFailureError) as info:
                await flow.run(client, task_queue=task_queue)
            history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
            texts[f"{name}: history"] = history.to_json()
            texts[f"{name}: failure"] = str(info.value) + str(info.value.cause)
            ran = await run_baton("status", flow.workflow_id, env=env)
            texts[f"{name}: baton status"] = ran.out + ran.err
            assert ran.code in (0, 1, 2) and flow.workflow_id in ran.out + ran.err
    texts["worker log"] = caplog.text
    assert "HTTP 401" in texts["401: history"] and "HTTP 403" in texts["503 then 403: history"]
    assert "did not answer within 0.5 s" in texts["timeout: history"]
    assert "could not reach openai" in texts["reset: history"]
    for where, text in texts.items():
        assert not leaks(text, planted), f"API key found in {where}: {leaks(text, planted)}"
    assert any(r.api_key_present for r in standin.requests)


async def test_a_malformed_key_at_worker_start_fails_calls_at_once_unquoted(
    client: Client, task_queue: str, baton_worker, standin: StandIn, caplog, monkeypatch
) -> None:
    """A worker built without the preflight (BatonPlugin in one's own Worker) and an
    environment holding a malformed key: every LLM call fails at once, not retried."""
    key = MALFORMED["newline"]
    for name, value in standin.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    flow = baton.new(workflow_name="keys").add("a", ask_model, {"model": "gpt-4o"})
    async with baton_worker([ask_model], ledger=False):
        with pytest.raises(WorkflowFailureError) as info:
            await flow.run(client, task_queue=task_queue)
        history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    message = str(info.value.cause)
    assert "InvalidLLMConfig" in message and "OPENAI_API_KEY" in message
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started == [1]  # not retried
    assert standin.requests == []
    for where, text in {"history": history.to_json(), "log": caplog.text, "error": message}.items():
        assert not leaks(text, key), where


async def test_complete_without_a_config_turns_a_malformed_env_key_into_a_final_error(
    monkeypatch,
) -> None:
    """``complete()`` called in a plain activity reads the environment itself: its
    ``LLMConfigError`` becomes non-retryable (a plain exception would be retried for ever)."""
    key = MALFORMED["tab"]
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(ApplicationError) as info:
        await complete([{"role": "user", "content": "hi"}], model="gpt-4o")
    assert info.value.type == INVALID_LLM_CONFIG and info.value.non_retryable
    assert "OPENAI_API_KEY" in info.value.message and "whitespace (U+0009)" in info.value.message
    assert not leaks(info.value.message, key)
