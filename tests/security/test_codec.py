"""Payload encryption (``baton_temporal.codec``): round trip, key rotation, tampering,
key configuration errors, and a flow on the dev server whose history holds no plaintext."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal import codec as codec_mod
from baton_temporal.codec import (
    ENCODING,
    KEY_ID_METADATA,
    CodecError,
    CodecKeyError,
    EncryptionCodec,
    EncryptionPlugin,
    data_converter,
    generate_key,
    parse_keys,
)
from baton_temporal.testing import StandIn

from . import steps

pytestmark = pytest.mark.timeout(60)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


KEY_A = base64.b64decode(generate_key())
KEY_B = base64.b64decode(generate_key())


def payload(text: str, encoding: bytes = b"json/plain") -> Payload:
    return Payload(metadata={"encoding": encoding}, data=json.dumps(text).encode())


# ---- the codec on its own -----------------------------------------------------------------


async def test_round_trip_hides_the_data_and_keeps_the_metadata() -> None:
    codec = EncryptionCodec([("a", KEY_A)])
    originals = [payload("the quarterly numbers"), payload("", b"binary/null"), Payload()]
    sealed = await codec.encode(originals)
    for p in sealed:
        assert p.metadata["encoding"] == ENCODING
        assert p.metadata[KEY_ID_METADATA] == b"a"
        assert b"quarterly" not in p.data and b"json/plain" not in p.data
    assert await codec.decode(sealed) == originals
    # A fresh nonce every time: the same payload never encrypts the same way twice.
    again = await codec.encode(originals[:1])
    assert again[0].data != sealed[0].data


async def test_rotation_new_payloads_use_the_newest_key_and_old_ones_still_open() -> None:
    old = EncryptionCodec([("2025-01", KEY_A)])
    rotated = EncryptionCodec(f"2025-01:{_b64(KEY_A)}, 2025-07:{_b64(KEY_B)}")
    assert rotated.key_id == "2025-07" and rotated.key_ids == ["2025-01", "2025-07"]
    from_before = await old.encode([payload("sealed before the rotation")])
    assert await rotated.decode(from_before) == [payload("sealed before the rotation")]
    after = await rotated.encode([payload("sealed after")])
    assert after[0].metadata[KEY_ID_METADATA] == b"2025-07"
    # A process that still has only the old key says which key it lacks and where to add it.
    with pytest.raises(CodecError, match=r"key '2025-07'.*BATON_CODEC_KEYS"):
        await old.decode(after)
    # Once the old key is retired, payloads sealed with it cannot be opened any more.
    retired = EncryptionCodec([("2025-07", KEY_B)])
    with pytest.raises(CodecError, match="'2025-01'"):
        await retired.decode(from_before)


async def test_tampering_is_detected() -> None:
    codec = EncryptionCodec([("a", KEY_A), ("b", KEY_B)])
    (sealed,) = await codec.encode([payload("pay 10 USD")])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([flipped])
    # Relabelling a payload with another known key id fails too (the id is authenticated).
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"a"
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([relabelled])
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:10])
    with pytest.raises(CodecError, match="truncated"):
        await codec.decode([truncated])
    # Same id, different key (a misconfigured worker): refused, not garbage.
    impostor = EncryptionCodec([("b", KEY_A)])
    with pytest.raises(CodecError, match="failed authentication"):
        await impostor.decode([sealed])


async def test_payloads_that_were_never_encrypted_pass_through() -> None:
    codec = EncryptionCodec([("a", KEY_A)])
    plain = [payload("written before encryption was switched on")]
    assert await codec.decode(plain) == plain


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "BATON_CODEC_KEYS is not set"),
        ({"BATON_CODEC_KEYS": " "}, "BATON_CODEC_KEYS is not set"),
        ({"BATON_CODEC_KEYS": "nocolonhere"}, "is not 'id:base64key'"),
        ({"BATON_CODEC_KEYS": ":" + generate_key()}, "is not 'id:base64key'"),
        ({"BATON_CODEC_KEYS": "k1:not*base64"}, "the key of 'k1' is not valid base64"),
        (
            {"BATON_CODEC_KEYS": "k1:" + _b64(b"short")},
            "key 'k1' is 5 bytes; AES needs 16, 24 or 32",
        ),
        ({"BATON_CODEC_KEYS": f"k1:{generate_key()},k1:{generate_key()}"}, "listed twice"),
    ],
)
def test_key_configuration_errors_say_how_to_fix_them(env: dict, expected: str) -> None:
    with pytest.raises(CodecKeyError) as caught:
        EncryptionCodec(environ=env)
    message = str(caught.value)
    assert expected in message
    for value in env.values():
        for part in value.split(","):
            secret = part.partition(":")[2].strip()
            if len(secret) > 8:
                assert secret not in message  # key material is never echoed


def test_repr_and_keygen_never_show_key_material() -> None:
    codec = EncryptionCodec([("a", KEY_A)])
    assert _b64(KEY_A) not in repr(codec) and "a" in repr(codec)
    key_id, key = parse_keys(f"x:{generate_key()}")[0]
    assert key_id == "x" and len(key) == 32


def test_keygen_command_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert codec_mod.main(["keygen", "--id", "2026-01"]) == 0
    line = capsys.readouterr().out.strip()
    codec = EncryptionCodec(line)
    assert codec.key_id == "2026-01"


# ---- a flow on the dev server with the codec on -------------------------------------------


async def history_bytes(client: Client, workflow_id: str) -> bytes:
    """Everything Temporal stored for a run: the raw protobuf bytes and its JSON form."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = History(events=history.events).SerializeToString()
    return raw + history.to_json().encode()


async def encrypted_client(env: WorkflowEnvironment, codec: EncryptionCodec) -> Client:
    return await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter(codec),
    )


async def test_flow_with_the_codec_leaves_no_plaintext_in_history(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    secret = f"planted-secret-{uuid.uuid4().hex}"
    codec = EncryptionCodec([("k1", KEY_A)])
    client = await encrypted_client(temporal_env, codec)
    ok_flow = (
        baton.new(workflow_name="sealed")
        .add("ask", steps.echo_prompt, {"secret": secret})
        .add("quote", steps.quote_upstream, deps=["ask"])
    )
    bad_flow = baton.new(workflow_name="sealed-failure").add(
        "boom", steps.fail_with_secret, {"secret": secret}
    )
    async with StandIn() as standin:
        plugin = baton.BatonPlugin(
            steps=steps.ALL, ledger=f"sqlite:///{tmp_path / 'l.sqlite3'}", llm=standin.config()
        )
        async with Worker(client, task_queue=task_queue, plugins=[plugin]):
            result = await ok_flow.run(client, task_queue=task_queue)
            states = await client.get_workflow_handle(ok_flow.workflow_id).query("baton.steps")
            with pytest.raises(WorkflowFailureError) as failure:
                await bad_flow.run(client, task_queue=task_queue)
        # The provider got the prompt (that is the point of calling it) ...
        assert any(secret in json.dumps(r.body) for r in standin.requests)
    # ... the workflow's own client reads everything back ...
    assert result.results["quote"] == {"quoted": secret}
    assert states["quote"]["state"] == "completed"
    assert secret in str(failure.value.cause)
    # ... and Temporal stored none of it in clear: not in inputs, results, the failure.
    plain_reader = temporal_env.client
    for flow in (ok_flow, bad_flow):
        stored = await history_bytes(plain_reader, flow.workflow_id)
        assert secret.encode() not in stored, f"plaintext secret in the history of {flow}"
        assert ENCODING in stored
    # Control: the same check does find the secret when the codec is off.
    async with StandIn() as standin:
        plugin = baton.BatonPlugin(
            steps=steps.ALL, ledger=f"sqlite:///{tmp_path / 'l2.sqlite3'}", llm=standin.config()
        )
        async with Worker(plain_reader, task_queue=task_queue, plugins=[plugin]):
            clear = baton.new(workflow_name="clear").add(
                "ask", steps.echo_prompt, {"secret": secret}
            )
            await clear.run(plain_reader, task_queue=task_queue)
    assert secret.encode() in await history_bytes(plain_reader, clear.workflow_id)


async def test_encryption_plugin_on_the_client_reaches_its_workers(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    secret = f"planted-secret-{uuid.uuid4().hex}"
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        plugins=[EncryptionPlugin(EncryptionCodec([("k1", KEY_A)]))],
    )
    assert isinstance(client.data_converter, DataConverter)
    assert isinstance(client.data_converter.payload_codec, EncryptionCodec)
    flow = baton.new(workflow_name="plugin").add("ask", steps.echo_prompt, {"secret": secret})
    async with StandIn() as standin:
        plugin = baton.BatonPlugin(
            steps=steps.ALL, ledger=f"sqlite:///{tmp_path / 'l.sqlite3'}", llm=standin.config()
        )
        async with Worker(client, task_queue=task_queue, plugins=[plugin]):
            result = await flow.run(client, task_queue=task_queue)
    assert result.results["ask"]["prompt"] == secret
    assert secret.encode() not in await history_bytes(temporal_env.client, flow.workflow_id)


async def test_a_worker_without_the_key_fails_loudly_then_recovers(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """A run sealed with a key its worker lacks is not lost or garbled: the worker refuses
    it with a message naming the key, and a worker that has the key completes it."""
    new = EncryptionCodec([("new-key", KEY_B)])
    client = await encrypted_client(temporal_env, new)
    flow = baton.new(workflow_name="rotation").add("ask", steps.echo_prompt, {"secret": "x"})
    handle = await flow.start(client, task_queue=task_queue)
    stale = await encrypted_client(temporal_env, EncryptionCodec([("old-key", KEY_A)]))
    async with StandIn() as standin:
        ledger = f"sqlite:///{tmp_path / 'l.sqlite3'}"
        plugin = baton.BatonPlugin(steps=steps.ALL, ledger=ledger, llm=standin.config())
        async with Worker(stale, task_queue=task_queue, plugins=[plugin]):
            for _ in range(100):
                history = await handle.fetch_history()
                failed = [
                    e for e in history.events if e.HasField("workflow_task_failed_event_attributes")
                ]
                if failed:
                    break
                await asyncio.sleep(0.1)
        # The stale worker sealed its failure report with the key it has: read it with both.
        rotated = await encrypted_client(
            temporal_env, EncryptionCodec([("old-key", KEY_A), ("new-key", KEY_B)])
        )
        failure = failed[0].workflow_task_failed_event_attributes.failure
        decoded = await rotated.data_converter.decode_failure(failure)
        assert "'new-key'" in str(decoded) and "BATON_CODEC_KEYS" in str(decoded)
        plugin = baton.BatonPlugin(steps=steps.ALL, ledger=ledger, llm=standin.config())
        async with Worker(rotated, task_queue=task_queue, plugins=[plugin]):
            result = await asyncio.wait_for(handle.result(), 30)
    assert result.results["ask"]["prompt"] == "x"


async def test_connect_encrypts_when_codec_keys_are_set(
    temporal_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton_temporal.codec import EncryptionCodec, generate_key
    from baton_temporal.worker import connect

    monkeypatch.setenv("BATON_CODEC_KEYS", f"k1:{generate_key()}")
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_env.client.service_client.config.target_host)
    client = await connect()
    assert isinstance(client.data_converter.payload_codec, EncryptionCodec)
