"""Budget caps on real parts: the dev server, the SDK clients against the stand-in, a
real ledger. Prices come from a table (steps.PRICES: about $1 a call) so figures read
plainly; docs/budgets.md states the rule these tests hold the code to."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

import baton_temporal as baton
from baton_temporal import multi_model
from baton_temporal.ledger import LedgerStore
from baton_temporal.testing import StandIn
from tests.ledger_support import ledger_rows

from ..cli._util import clean_env, run_baton
from .steps import (
    ALL,
    HAIKU,
    OPUS,
    PRICES,
    SONNET,
    WITH_PRIVATE,
    ask,
    ask_then_fail,
    long_answer,
    plain,
    synthesize,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def standin():
    async with StandIn(responder=long_answer, latency=0.05) as s:
        yield s


async def open_store(tmp_path: Path, pricer=PRICES) -> LedgerStore:
    store = LedgerStore.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", pricer=pricer)
    await store.migrate()
    return store


async def replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=[], plugins=[baton.BatonPlugin(ledger=False)])
    await replayer.replay_workflow(history)  # raises on nondeterminism


def budget_failure(err: pytest.ExceptionInfo[WorkflowFailureError]) -> ApplicationError:
    cause = err.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def spent_in_ledger(store: LedgerStore, workflow_id: str) -> Decimal:
    rows = await ledger_rows(store, workflow_id)
    return sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))


@pytest.mark.slow  # ~6 s: runs `baton status` as a program
async def test_fan_out_whose_third_model_would_cross_the_cap(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    # Each call: worst case ~$1.03 (100 output tokens + the prompt bound), cost ~$1.01.
    # $2.50 fits two; the third's worst case would take the flow to ~$3.05.
    store = await open_store(tmp_path)
    flow = baton.new(workflow_name="budgeted", budget_usd="2.50", max_concurrency=1).pipe(
        multi_model.fan_out,
        "assess",
        ask,
        models=[SONNET, OPUS, HAIKU],
        synthesize_with=synthesize,
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        view = await handle.query("baton.budget")
        states = await handle.query("baton.steps")
        status = await run_baton(
            "status",
            flow.workflow_id,
            env=clean_env(TEMPORAL_ADDRESS=client.service_client.config.target_host),
        )
    failure = budget_failure(err)
    assert failure.type == "BudgetExceeded" == baton.BUDGET_EXCEEDED
    # The reason names the spend, the cap and the fix.
    assert "the flow's budget of $2.50 would be exceeded: $2.0" in failure.message
    assert "raise budget_usd of baton.new(...)" in failure.message
    assert "steps not started: assess_synthesis" in failure.message
    assert [states[n]["state"] for n in ("assess_sonnet_4", "assess_opus_4")] == ["completed"] * 2
    refused = states["assess_3_5_haiku"]
    assert refused["state"] == "failed" and refused["error"].startswith("BudgetExceeded: ")
    assert "raise the flow's budget_usd" in refused["error"]
    assert states["assess_synthesis"]["state"] == "cancelled"
    assert states["assess_synthesis"]["error"].startswith("not started: budget: the flow's")
    # Two calls ran and are recorded; the third never left.
    assert standin.billed_calls() == 2
    assert [r.model for r in standin.billed_requests()] == [SONNET, OPUS]
    rows = await ledger_rows(store, flow.workflow_id)
    assert [r["step"] for r in rows] == ["assess_sonnet_4", "assess_opus_4"]
    spent = await spent_in_ledger(store, flow.workflow_id)
    assert Decimal(view["spent_usd"]) == spent  # the workflow's book agrees with the ledger
    assert Decimal("2") < spent <= Decimal("2.50") and view["held_usd"] == "0"
    assert view["stopped"] and view["calls"] == 2
    print(f"\nfan-out: spent {spent} of cap 2.50 (book {view['spent_usd']}), 2 of 3 models")
    assert status.code == 0, status.err
    assert "budget      $2.0" in status.out and "spent of $2.50 (81%)" in status.out
    assert "stopped: the flow's budget of $2.50 would be exceeded" in status.out
    await store.close()


async def test_concurrent_steps_racing_for_the_last_dollars(
    client: Client, task_queue: str, baton_worker, tmp_path: Path
) -> None:
    # Eight steps start together, each holding a ~$1.03 worst case; $3.50 fits three.
    store = await open_store(tmp_path)
    flow = baton.new(workflow_name="race", budget_usd="3.50")
    for i in range(8):
        flow = flow.add(f"s{i}", ask, {"model": SONNET})
    async with StandIn(responder=long_answer, latency=0.3) as standin:
        async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
            handle = await flow.start(client, task_queue=task_queue)
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            view = await handle.query("baton.budget")
            states = await handle.query("baton.steps")
        billed = standin.billed_calls()
    # The book is kept by workflow code: the recorded run, updates and all, replays.
    await replays(await handle.fetch_history())
    assert budget_failure(err).type == "BudgetExceeded"
    done = sorted(n for n, s in states.items() if s["state"] == "completed")
    refused = sorted(n for n, s in states.items() if "BudgetExceeded" in (s["error"] or ""))
    assert len(done) == billed == 3 and len(refused) == 5, states
    spent = await spent_in_ledger(store, flow.workflow_id)
    assert Decimal(view["spent_usd"]) == spent
    # The rule: granted worst cases never sum past the cap, so neither does the spend;
    # it is within one worst case of it (a fourth call did not fit).
    worst = Decimal("1.03")
    assert spent <= Decimal("3.50") < spent + 2 * worst
    print(f"\nrace: 8 concurrent steps, {billed} calls granted, spent {spent} of cap 3.50")
    await store.close()


async def test_retries_that_pay_again_are_counted_until_the_cap(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    flow = (
        baton.new(workflow_name="retrying", budget_usd="2.50")
        .add("flaky", ask_then_fail, {"model": SONNET})
        .add("after", plain, deps=["flaky"])
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        states = await handle.query("baton.steps")
    assert budget_failure(err).type == "BudgetExceeded"
    # Attempts 1 and 2 paid; attempt 3 was refused (of 5 allowed) and not retried.
    assert standin.billed_calls() == 2
    assert "BudgetExceeded" in states["flaky"]["error"]
    assert states["after"]["state"] == "cancelled"
    rows = await ledger_rows(store, flow.workflow_id)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "step_failed"), (2, "step_failed")]
    assert await spent_in_ledger(store, flow.workflow_id) <= Decimal("2.50")
    await store.close()


async def test_a_step_cap_refuses_its_own_calls_only(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    flow = (
        baton.new(workflow_name="stepcap", budget_usd="10")
        .add(
            "chatty",
            ask,
            {"model": SONNET, "calls": 3},
            options=baton.StepOptions(budget_usd="1.50"),
        )
        .add("other", ask, {"model": SONNET})
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        states = await handle.query("baton.steps")
    failure = budget_failure(err)
    assert failure.type == "FlowFailed"  # a step's cap fails the step, not the whole flow
    assert "step 'chatty'" in states["chatty"]["error"]
    assert "StepOptions(budget_usd=...)" in states["chatty"]["error"]
    assert states["other"]["state"] == "completed"
    assert standin.billed_calls() == 2  # chatty's first call, and other's
    await store.close()


async def test_unpriced_model_under_a_cap_is_refused_until_it_has_a_price(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    private = "openai:my-private-model-7"
    flow = baton.new(workflow_name="unpriced", budget_usd="5").add("p", ask, {"model": private})
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        with pytest.raises(WorkflowFailureError) as err:
            await flow.run(client, task_queue=task_queue)
    message = budget_failure(err).message
    assert "BudgetExceeded: model 'openai:my-private-model-7' has no price" in message
    assert "BATON_PRICES_FILE" in message
    assert standin.billed_calls() == 0
    # Without a cap the same model runs (and is stored unpriced, as before).
    plain_flow = baton.new(workflow_name="unpriced").add("p", ask, {"model": private})
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        await plain_flow.run(client, task_queue=task_queue)
    # Given a price (the opt-in), it runs under the cap.
    priced = baton.new(workflow_name="priced", budget_usd="5").add("p", ask, {"model": private})
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=WITH_PRIVATE):
        result = await priced.run(client, task_queue=task_queue)
    assert result.results["p"]["texts"]
    assert standin.billed_calls() == 2
    # An OpenAI call without max_tokens has no known worst case either.
    no_limit = baton.new(workflow_name="nolimit", budget_usd="5").add(
        "n", ask, {"model": "gpt-4o", "max_tokens": None}
    )
    async with baton_worker(ALL, ledger=store, llm=standin.config(), pricer=PRICES):
        with pytest.raises(WorkflowFailureError) as err:
            await no_limit.run(client, task_queue=task_queue)
    assert "needs max_tokens=..." in budget_failure(err).message
    assert standin.billed_calls() == 2
    await store.close()


async def test_worker_default_applies_when_the_flow_sets_none(
    client: Client, task_queue: str, baton_worker, standin: StandIn, tmp_path: Path
) -> None:
    store = await open_store(tmp_path)
    flow = (
        baton.new(workflow_name="defaulted")
        .add("a", ask, {"model": SONNET})
        .add("b", ask, {"model": SONNET}, deps=["a"])
        .add("c", plain, deps=["b"])
    )
    async with baton_worker(
        ALL, ledger=store, llm=standin.config(), pricer=PRICES, budget_usd="1.50"
    ):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        view = await handle.query("baton.budget")
    failure = budget_failure(err)
    assert failure.type == "BudgetExceeded" and "BATON_BUDGET_USD" in failure.message
    assert view["cap_usd"] == "1.50" and view["from_worker_default"] is True
    assert standin.billed_calls() == 1
    # The flow's own cap wins over the worker's default.
    own = baton.new(workflow_name="own", budget_usd="5").add("a", ask, {"model": SONNET})
    own = own.add("b", ask, {"model": SONNET}, deps=["a"])
    async with baton_worker(
        ALL, ledger=store, llm=standin.config(), pricer=PRICES, budget_usd="1.50"
    ):
        await own.run(client, task_queue=task_queue)
    assert standin.billed_calls() == 3
    await store.close()


async def test_budget_in_flow_json_sent_by_hand_is_checked_at_start(
    client: Client, task_queue: str, baton_worker
) -> None:
    data = {
        "baton_flow": 1,
        "workflow_name": "typed",
        "budget_usd": "lots",
        "steps": [{"name": "a", "step": "plain"}],
    }
    async with baton_worker([plain]):
        with pytest.raises(WorkflowFailureError) as err:
            await client.execute_workflow(
                "baton.Flow", data, id=f"typed-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
    failure = budget_failure(err)
    assert failure.type == "InvalidFlow"
    assert "budget_usd is 'lots', not a number" in failure.message
    assert 'positive number of US dollars, e.g. 5 or "2.50"' in failure.message
