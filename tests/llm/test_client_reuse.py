"""One SDK client per provider endpoint per worker, its pool sized from the worker's
activity slots, reused by every call: counted by LLMClients.built and by the TCP
connections the stand-in accepted (real SDK clients, real worker, no mocks)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal.llm import LLMClients, LLMConfig, complete
from baton_temporal.llm._clients import shared_clients
from baton_temporal.testing import StandIn

pytestmark = pytest.mark.timeout(90)

MODELS = ("gpt-4o", "claude-sonnet-4-20250514")


async def test_a_pool_never_opens_more_connections_than_its_limit(
    standin: StandIn, config: LLMConfig
) -> None:
    standin.set_latency(0.05)
    before = standin.connections_opened
    async with LLMClients(max_connections=4, max_keepalive=4) as clients:
        await asyncio.gather(
            *(
                complete(
                    [{"role": "user", "content": f"q{i}"}],
                    model=MODELS[i % 2],
                    config=config,
                    clients=clients,
                )
                for i in range(40)
            )
        )
        assert clients.built == 2  # one per provider, for 40 calls
    assert standin.billed_calls() == 40
    # Four per provider at most, however many calls were in flight.
    assert standin.connections_opened - before <= 8


async def test_calls_without_clients_share_the_loops_clients(
    standin: StandIn, config: LLMConfig
) -> None:
    shared = shared_clients()
    built = shared.built
    for i in range(10):
        await complete([{"role": "user", "content": f"q{i}"}], model="gpt-4o", config=config)
    assert shared.built - built <= 1
    assert shared_clients() is shared


def test_pool_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="max_connections must be a whole number >= 1"):
        LLMClients(max_connections=0)
    clients = LLMClients.for_slots(25)
    assert (clients.max_connections, clients.max_keepalive) == (50, 25)


@baton.step
async def ask(job: baton.Job) -> dict:
    reply = await baton.call_llm(
        job, [{"role": "user", "content": job.step}], model=job.args["model"]
    )
    return {"text": reply.text}


async def test_a_worker_builds_one_client_per_provider_sized_from_its_slots(
    client: Client, standin: StandIn
) -> None:
    slots = 3
    queue = f"reuse-{uuid.uuid4().hex[:8]}"
    plugin = baton.BatonPlugin(steps=[ask], ledger=False, llm=standin.config())
    flow = baton.new(workflow_name="reuse")
    for i in range(24):
        flow = flow.add(f"s{i}", ask, {"model": MODELS[i % 2]})
    before = standin.connections_opened
    async with Worker(client, task_queue=queue, plugins=[plugin], max_concurrent_activities=slots):
        await flow.run(client, task_queue=queue)
        resources = plugin.resources()
        assert resources is not None
        clients = resources.clients
        assert clients.built == 2
        assert (clients.max_connections, clients.max_keepalive) == (2 * slots, slots)
    assert standin.billed_calls() == 24
    # At most `slots` steps run at once, so each provider's pool needs <= slots connections.
    assert standin.connections_opened - before <= 2 * slots
