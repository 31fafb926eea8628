"""Round 2 of bad input: files that explode, names with a trailing newline, durations
that overflow, prune without confirmation, retry-after without a cap, routing to any
task queue, sync steps starving each other, usage and results without bounds.

Real parts: the ``baton`` program, the dev server, workers, the SDK clients against the
provider stand-in, SQLite ledgers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

import baton_temporal as baton
from baton_temporal import FlowError
from baton_temporal._files import FileRefused, YamlRefused, load_yaml, read_small_file
from baton_temporal.cli._commands import load_flow_file
from baton_temporal.cli._common import CliError
from baton_temporal.ledger import LedgerStore, UsageRecord
from baton_temporal.llm import PROVIDER_RETRYABLE, LLMClients, complete
from baton_temporal.pricing import PricingError, TablePricer, pricer_from_env
from baton_temporal.testing import Fault, StandIn
from baton_temporal.usage import LLMUsage

from ..cli._util import clean_env, run_baton

pytestmark = pytest.mark.timeout(90)

ONCE = RetryPolicy(maximum_attempts=1)

# 611 bytes of YAML in the red team's report grew to 5.2 GB; this one is the same shape.
BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
baton_flow: 1
workflow_name: bomb
steps: [{name: a, step: s, args: {x: *i}}]
"""


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn() as server:
        yield server


# ---- files that explode -------------------------------------------------------------------


async def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert bomb.stat().st_size < 1000
    ran = await run_baton("start", str(bomb), env=clean_env(TEMPORAL_ADDRESS="127.0.0.1:1"))
    assert ran.code == 2, ran
    assert "expands to more than 200,000 values" in ran.err and "aliases" in ran.err
    assert len(ran.err_lines) == 1
    prices = tmp_path / "prices.yaml"
    prices.write_text(BOMB.replace("baton_flow: 1", "models: {}"))
    with pytest.raises(PricingError, match="expands to more than"):
        TablePricer.from_file(prices)


def test_yaml_aliases_within_bounds_still_work_and_self_reference_is_refused(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared.yaml"
    shared.write_text(
        "baton_flow: 1\nworkflow_name: w\nsteps:\n"
        "  - {name: a, step: s, args: &common {tone: terse}}\n"
        "  - {name: b, step: s, args: *common, deps: [a]}\n"
    )
    flow = load_flow_file(str(shared))
    assert [s.args for s in flow.spec.steps] == [{"tone": "terse"}, {"tone": "terse"}]
    with pytest.raises(YamlRefused, match="refers to itself"):
        load_yaml("a: &a [1, *a]")
    with pytest.raises(YamlRefused, match="refers to itself"):
        load_yaml("a: &a {b: *a}")
    with pytest.raises(YamlRefused, match="nested too deeply"):
        load_yaml("[" * 5000 + "]" * 5000)


@pytest.mark.parametrize(
    ("value", "read_as"),
    [("0600", "384"), ("-010", "-8"), ("10:00", "600"), ("1:30.5", "90.5")],
)
def test_a_yaml_number_that_yaml_reads_as_another_number_is_refused(
    value: str, read_as: str, tmp_path: Path
) -> None:
    # YAML 1.1 reads 0600 as octal (384 s for "600 s") and 10:00 as base 60, silently.
    file = tmp_path / "flow.yaml"
    file.write_text(
        "baton_flow: 1\nworkflow_name: w\nsteps:\n"
        f"  - {{name: a, step: s, options: {{start_to_close_timeout: {value}}}}}\n"
    )
    with pytest.raises(CliError, match=f"line 4: {value} would be read as the number {read_as}"):
        load_flow_file(str(file))
    with pytest.raises(YamlRefused, match=f"quote it for a string \\('{value}'\\)"):
        load_yaml(f"zip: {value}")
    # Numbers YAML reads as written stay accepted.
    assert load_yaml("a: 600\nb: 007\nc: 0\nd: 0x10\ne: 1_000\nf: 0.5") == {
        "a": 600,
        "b": 7,
        "c": 0,
        "d": 16,
        "e": 1000,
        "f": 0.5,
    }


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: "/dev/zero", "/dev/zero is a device, not a regular file"),
        (lambda d: "/dev/urandom", "is a device, not a regular file"),
        (lambda d: str(d), "is a directory, not a regular file"),
        (lambda d: _fifo(d), "is a pipe (FIFO), not a regular file"),
        (lambda d: _unix_socket(d), "is a socket, not a regular file"),
        (lambda d: _symlink(d, "/dev/zero"), "is a device, not a regular file"),
        (lambda d: _big(d, 3 * 1024 * 1024), "a flow file may be at most 2,097,152 bytes"),
    ],
    ids=["dev-zero", "dev-urandom", "directory", "fifo", "socket", "symlink-to-dev-zero", "3MB"],
)
def test_flow_files_that_are_not_small_regular_files(make, expected: str, tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(CliError) as info:
        load_flow_file(path)
    assert expected in str(info.value)


def test_deeply_nested_flow_json_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"baton_flow": 1, "workflow_name": "w", "steps": ' + "[" * 100_000)
    with pytest.raises(
        CliError,
        match="nests too deeply to read; step args may nest at most 100 levels: flatten them",
    ):
        load_flow_file(str(deep))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: "/dev/zero", "is a device, not a regular file"),
        (lambda d: _fifo(d), "is a pipe (FIFO)"),
        (lambda d: _big(d, 9 * 1024 * 1024, suffix=".json"), "at most 8,388,608 bytes"),
    ],
    ids=["dev-zero", "fifo", "9MB"],
)
def test_prices_files_that_are_not_small_regular_files(make, expected: str, tmp_path) -> None:
    path = make(tmp_path)
    with pytest.raises(PricingError) as info:
        pricer_from_env({"BATON_PRICES_FILE": path})
    assert "cannot read price table" in str(info.value) and expected in str(info.value)


def test_read_small_file_reads_at_most_the_cap_from_a_growing_source(tmp_path: Path) -> None:
    ok = tmp_path / "ok.json"
    ok.write_text("{}")
    assert read_small_file(ok, limit=10, what="x") == "{}"
    with pytest.raises(FileRefused, match="at most 1 bytes"):
        read_small_file(ok, limit=1, what="x")


def _fifo(d: Path) -> str:
    path = d / "flow.fifo"
    os.mkfifo(path)
    return str(path)


def _unix_socket(d: Path) -> str:
    path = d / "flow.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return str(path)


def _symlink(d: Path, target: str) -> str:
    path = d / "flow.yaml"
    path.symlink_to(target)
    return str(path)


def _big(d: Path, size: int, suffix: str = ".json") -> str:
    path = d / f"big{suffix}"
    with path.open("wb") as file:
        file.truncate(size)
    return str(path)


# ---- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a\n", "a\r", "a\r\n", "a\x00", "a\u2028", "\na", "a\n\n"])
def test_names_with_line_breaks_are_refused(name: str) -> None:
    with pytest.raises(FlowError, match="is not valid; use letters, digits"):
        baton.new(workflow_name="w").add(name, _sync_quick, {})
    data = {"baton_flow": 1, "workflow_name": "w", "steps": [{"name": "a", "step": "s"},
                                                             {"name": name, "step": "s"}]}  # fmt: skip
    with pytest.raises(FlowError, match="is not valid"):
        baton.Flow.from_json(data)


# ---- durations and prune -------------------------------------------------------------------


async def _ledger_with_rows(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    async with LedgerStore.from_url(url) as store:
        await store.migrate()
        await store.record(
            UsageRecord.for_attempt(
                [LLMUsage(model="gpt-4o", input_tokens=10, output_tokens=2)],
                workflow_id="wf", step="s", activity_id="1", run_id="r", workflow_name="w",
                attempt=1, recorded_at=datetime.now(UTC) - timedelta(minutes=5),
            )
        )  # fmt: skip
    return url


async def test_prune_of_everything_asks_for_yes(tmp_path: Path) -> None:
    url = await _ledger_with_rows(tmp_path)
    env = clean_env(BATON_LEDGER_URL=url)
    for age in ("0s", "0.5s", "59m", "23h", "0d", "0w"):
        ran = await run_baton("db", "prune", "--older-than", age, env=env)
        assert ran.code == 2, ran
        assert "most likely every row" in ran.err and "run again with --yes" in ran.err
    ran = await run_baton("stats", "totals", "wf", env=env)
    assert "calls                 1" in ran.out  # nothing was deleted
    ran = await run_baton("db", "prune", "--older-than", "30d", env=env)
    assert ran.code == 0 and "deleted 0 usage rows" in ran.out
    ran = await run_baton("db", "prune", "--older-than", "0s", "--yes", env=env)
    assert ran.code == 0 and "deleted 1 usage rows" in ran.out


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        ("99999999999d", "longer than 100 years"),
        ("9999999999999d", "invalid duration"),
        ("1000000d", "longer than 100 years"),
        ("36526d", "longer than 100 years"),
        ("5300w", "longer than 100 years"),
        ("876601h", "longer than 100 years"),
        ("52596001m", "longer than 100 years"),
        ("3155760001s", "longer than 100 years"),
        ("1e9d", "invalid duration"),
        ("inf d", "invalid duration"),
        ("nan d", "invalid duration"),
        ("-1d", "invalid duration"),
        ("\u0663d", "invalid duration"),
        ("7", "invalid duration"),
        ("7y", "invalid duration"),
    ],
)
async def test_absurd_durations_are_refused_in_prune_and_stats(
    age: str, expected: str, tmp_path: Path
) -> None:
    url = await _ledger_with_rows(tmp_path)
    env = clean_env(BATON_LEDGER_URL=url)
    for args in (
        ("db", "prune", f"--older-than={age}", "--yes"),
        ("stats", "models", f"--since={age}"),
    ):
        ran = await run_baton(*args, env=env)
        assert ran.code == 2, (args, ran)
        assert expected in ran.err and "Traceback" not in ran.err, ran.err
        assert "unexpected error" not in ran.err
    ran = await run_baton("stats", "totals", "wf", env=env)
    assert "calls                 1" in ran.out


async def test_stats_since_zero_and_the_longest_allowed_duration(tmp_path: Path) -> None:
    url = await _ledger_with_rows(tmp_path)
    env = clean_env(BATON_LEDGER_URL=url)
    ran = await run_baton("stats", "models", "--since", "0s", env=env)
    assert ran.code == 2 and "--since 0 covers no time" in ran.err
    ran = await run_baton("stats", "models", "--since", "36525d", "--json", env=env)
    assert ran.code == 0, ran
    assert json.loads(ran.out)[0]["calls"] == 1
    ran = await run_baton("db", "prune", "--older-than", "36525d", env=env)
    assert ran.code == 0 and "deleted 0 usage rows" in ran.out


# ---- retry-after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(503, retry_after=86400),
        Fault.status(429, retry_after="Wed, 21 Oct 2099 07:28:00 GMT"),
        Fault.status(529, retry_after_ms=86_400_000),
        Fault.status(503, retry_after="1e308"),
        Fault.status(503, retry_after_ms=1e308),
    ],
    ids=["seconds", "http-date", "retry-after-ms", "1e308", "1e308-ms"],
)
async def test_a_huge_retry_after_is_capped_and_the_error_says_so(
    standin: StandIn, fault: Fault, monkeypatch
) -> None:
    standin.script("gpt-4o", [fault])
    async with LLMClients() as clients:
        with pytest.raises(ApplicationError) as info:
            await complete([{"role": "user", "content": "hi"}], model="gpt-4o",
                           config=standin.config(), clients=clients)  # fmt: skip
    err = info.value
    assert err.type == PROVIDER_RETRYABLE and not err.non_retryable
    assert err.next_retry_delay == timedelta(minutes=10)
    assert "will be retried after 600 s: the provider asked for" in err.message
    assert "more than BATON_MAX_RETRY_AFTER_S=600 allows (raise it to wait longer)" in err.message
    # Configurable; a delay under the cap is kept as asked.
    monkeypatch.setenv("BATON_MAX_RETRY_AFTER_S", "2")
    standin.script("gpt-4o", [fault, Fault.status(503, retry_after=1)])
    async with LLMClients() as clients:
        for cap in (2, 1):
            with pytest.raises(ApplicationError) as info:
                await complete([{"role": "user", "content": "hi"}], model="gpt-4o",
                               config=standin.config(), clients=clients)  # fmt: skip
            assert info.value.next_retry_delay == timedelta(seconds=cap)


async def test_a_capped_retry_after_lets_the_flow_finish(
    client: Client, task_queue: str, baton_worker, standin: StandIn, monkeypatch
) -> None:
    """Uncapped, this flow would wait a day for its second attempt (and time the test out)."""
    monkeypatch.setenv("BATON_MAX_RETRY_AFTER_S", "0.5")
    standin.script("gpt-4o", [Fault.status(503, retry_after=86400), Fault.ok("fine")])
    flow = baton.new(workflow_name="capped").add("a", _ask, {"model": "gpt-4o"})
    async with baton_worker([_ask], llm=standin.config(), ledger=False):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["a"] == {"text": "fine"} and result.steps["a"].attempt == 2


async def test_baton_status_shows_a_step_waiting_on_a_capped_retry_after(
    client: Client, task_queue: str, baton_worker, standin: StandIn, monkeypatch
) -> None:
    monkeypatch.setenv("BATON_MAX_RETRY_AFTER_S", "120")
    standin.script("gpt-4o", [Fault.status(503, retry_after=86400)])
    flow = baton.new(workflow_name="capped").add("a", _ask, {"model": "gpt-4o"})
    env = clean_env(TEMPORAL_ADDRESS=client.service_client.config.target_host)
    async with baton_worker([_ask], llm=standin.config(), ledger=False):
        handle = await flow.start(client, task_queue=task_queue)
        for _ in range(100):  # until the first attempt has failed (at most 10 s)
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            if pending and pending[0].HasField("last_failure"):
                break
            await asyncio.sleep(0.1)
        ran = await run_baton("status", flow.workflow_id, env=env)
        await handle.terminate("test over")
    assert ran.code == 0, ran
    assert "waiting to retry:" in ran.out
    assert (
        "_ask (activity 1): attempt 1 failed: openai (model 'gpt-4o') answered HTTP 503" in ran.out
    )
    assert "will be retried after 120 s: the provider asked for 86400 s, more than " in ran.out
    assert "BATON_MAX_RETRY_AFTER_S=120 allows (raise it to wait longer)" in ran.out
    assert "next attempt at" in ran.out


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("BATON_MAX_RETRY_AFTER_S", "soon", ["is not a positive number of seconds"]),
        (
            "BATON_HTTP_TRANSPORT",
            "requests",
            ["is not a transport", "set it to aiohttp (the default) or httpx"],
        ),
    ],
)
async def test_a_bad_worker_setting_stops_the_worker_at_start(
    variable: str, value: str, says: list[str]
) -> None:
    env = clean_env(
        **{variable: value},
        BATON_STEPS="baton_temporal.examples.seed",
        TEMPORAL_ADDRESS="127.0.0.1:1",
    )
    ran = await run_baton("worker", env=env)
    assert ran.code == 2, ran
    assert f"{variable}={value!r}" in ran.err
    for words in says:
        assert words in ran.err


@baton.step(retry_policy=RetryPolicy(maximum_attempts=3))
async def _ask(job: baton.Job) -> dict:
    reply = await baton.call_llm(job, [{"role": "user", "content": "hi"}], model=job.args["model"])
    return {"text": reply.text}


# ---- task-queue allow-list ----------------------------------------------------------------


@baton.step
async def _where(job: baton.Job) -> dict:
    from temporalio import activity

    return {"queue": activity.info().task_queue}


async def test_the_worker_refuses_steps_routed_to_queues_not_allowed(
    client: Client, task_queue: str, baton_worker
) -> None:
    other = f"{task_queue}-other"
    ok = (
        baton.new(workflow_name="routed")
        .add("home", _where, {})
        .add("listed", _where, {}, task_queue=other)
    )
    bad = (
        baton.new(workflow_name="routed")
        .add("first", _where, {})
        .add("away", _where, {}, task_queue="payments-prod", deps=["first"])
    )
    async with (
        baton_worker([_where], ledger=False, allowed_task_queues=[other]),
        Worker(client, task_queue=other, plugins=[baton.BatonPlugin([_where], ledger=False)]),
    ):
        result = await ok.run(client, task_queue=task_queue)
        assert result.results == {"home": {"queue": task_queue}, "listed": {"queue": other}}
        with pytest.raises(WorkflowFailureError) as info:
            await bad.run(client, task_queue=task_queue)
        history = await client.get_workflow_handle(bad.workflow_id).fetch_history()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TaskQueueNotAllowed"
    assert "step 'away' asks for task queue 'payments-prod'" in cause.message
    assert "BATON_ALLOWED_TASK_QUEUES" in cause.message
    scheduled = [
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == [task_queue]  # "first" ran; nothing was sent to payments-prod
    assert not any(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in history.events
    )


async def test_the_cli_refuses_flow_files_routed_to_queues_not_allowed(tmp_path: Path) -> None:
    flow = baton.new(workflow_name="routed").add("a", _where, {}, task_queue="payments-prod")
    path = tmp_path / "flow.json"
    path.write_text(flow.to_json())
    # Temporal is unreachable: the refusal must come before any connection.
    env = clean_env(TEMPORAL_ADDRESS="127.0.0.1:1", BATON_ALLOWED_TASK_QUEUES="baton,gpu")
    ran = await run_baton("start", str(path), env=env)
    assert ran.code == 2, ran
    assert "step 'a' asks for task queue 'payments-prod'" in ran.err
    assert "(allowed: baton, gpu)" in ran.err
    ran = await run_baton("start", str(path), "--allow-task-queue", "baton",
                          env=clean_env(TEMPORAL_ADDRESS="127.0.0.1:1"))  # fmt: skip
    assert ran.code == 2 and "payments-prod" in ran.err
    home = tmp_path / "home.json"
    home.write_text(baton.new(workflow_name="h").add("a", _where, {}).to_json())
    ran = await run_baton("start", str(home), "--task-queue", "other", env=env)
    assert ran.code == 2 and "task queue 'other' is not allowed here" in ran.err
    ran = await run_baton("start", str(home), env={**env, "BATON_ALLOWED_TASK_QUEUES": " , "})
    assert ran.code == 2 and "names no queue" in ran.err
    ran = await run_baton("start", str(home), env=env)  # allowed: gets as far as connecting
    assert ran.code == 2 and "cannot reach Temporal" in ran.err


# ---- sync steps ----------------------------------------------------------------------------

_order: list[str] = []
_order_lock = threading.Lock()


@baton.step(start_to_close_timeout=timedelta(seconds=1), retry_policy=ONCE)
def _sync_overrun(job: baton.Job) -> dict:
    time.sleep(job.args["sleep"])
    with _order_lock:
        _order.append("overrun done")
    return {}


@baton.step(retry_policy=ONCE)
def _sync_quick(job: baton.Job) -> dict:
    with _order_lock:
        _order.append("quick done")
    return {}


async def test_sync_steps_overrunning_their_timeout_do_not_starve_others(
    client: Client, task_queue: str, baton_worker, caplog
) -> None:
    """The red team's case: sync steps still running after their timeout held every
    thread of asyncio's shared pool (6 on 2 cores), and a quick sync step waited for them.
    With the worker's own pool (one thread per activity slot) it runs at once."""
    _order.clear()
    caplog.set_level(logging.WARNING, logger="baton_temporal.steps")
    slow = baton.new(workflow_name="overrun")
    for i in range(10):
        slow = slow.add(f"slow{i}", _sync_overrun, {"sleep": 12})
    quick = baton.new(workflow_name="quick").add("q", _sync_quick, {})
    async with baton_worker([_sync_overrun, _sync_quick], ledger=False) as worker:
        with pytest.raises(WorkflowFailureError) as info:
            await slow.run(client, task_queue=task_queue)  # every step timed out
        assert "timed out" in str(info.value.cause)
        await quick.run(client, task_queue=task_queue)
        with _order_lock:
            assert _order == ["quick done"]  # before any overrunning step returned
        plugin = next(p for p in worker.config()["plugins"] if isinstance(p, baton.BatonPlugin))
        threads = plugin.resources().sync_threads
        assert threads.max_threads == 100 and threads.overrunning == 10
    assert caplog.text.count("is still running after its 1 s timeout") == 10
    assert "Python cannot stop a thread" in caplog.text


async def test_the_sync_pool_is_sized_from_the_activity_slots(
    client: Client, task_queue: str
) -> None:
    plugin = baton.BatonPlugin([_sync_quick], ledger=False)
    flow = baton.new(workflow_name="q").add("q", _sync_quick, {})
    async with Worker(client, task_queue=task_queue, plugins=[plugin],
                      max_concurrent_activities=7):  # fmt: skip
        await flow.run(client, task_queue=task_queue, id=f"{flow.workflow_id}-1")
        assert plugin.resources().sync_threads.max_threads == 7
    explicit = baton.BatonPlugin([_sync_quick], ledger=False, sync_step_threads=3)
    async with Worker(client, task_queue=task_queue, plugins=[explicit]):
        await flow.run(client, task_queue=task_queue, id=f"{flow.workflow_id}-2")
        assert explicit.resources().sync_threads.max_threads == 3
    with pytest.raises(ValueError, match="sync_step_threads must be a whole number >= 1"):
        baton.BatonPlugin([_sync_quick], sync_step_threads=0)


# ---- usage and result bounds ----------------------------------------------------------------


@baton.step
async def _many_usages(job: baton.Job) -> dict:
    entry = {"model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}
    return {"llm_usage": [dict(entry, call_id=str(i)) for i in range(job.args["n"])]}


@baton.step
async def _deep_result(job: baton.Job) -> dict:
    value: dict = {}
    for _ in range(job.args["depth"]):
        value = {"x": value}
    return value


@baton.step
async def _deep_list(job: baton.Job) -> dict:
    value: list = []
    for _ in range(job.args["depth"]):
        value = [value]
    return {"v": value}


@baton.step
async def _self_containing(job: baton.Job) -> dict:
    value: dict = {"name": "loop"}
    value["self"] = value
    return value


@baton.step
async def _usage_with_stray_keys(job: baton.Job) -> dict:
    entry = {"model": "gpt-4o", **{f"k{i}": 1 for i in range(job.args["n"])}}
    return {"llm_usage": entry}


@pytest.mark.parametrize(
    ("step", "args", "error_type", "expected"),
    [
        (
            _many_usages,
            {"n": 5000},
            "InvalidLLMUsage",
            "returned 5,000 llm_usage entries; at most 1,000",
        ),
        (_deep_result, {"depth": 5000}, "StepResultError", "nests deeper than 100 levels; flatten"),
        (
            _deep_list,
            {"depth": 100_000},
            "StepResultError",
            "nests deeper than 100 levels; flatten",
        ),
        (_self_containing, {}, "StepResultError", "contains itself"),
        (
            _usage_with_stray_keys,
            {"n": 5000},
            "InvalidLLMUsage",
            "k4: Extra inputs are not permitted; and 4,995 more",
        ),
    ],
    ids=["5000-usages", "deep-dict", "deep-list", "self-containing", "5000-stray-keys"],
)
async def test_unbounded_usage_and_results_fail_at_once(
    client: Client, task_queue: str, baton_worker, tmp_path: Path, step, args, error_type, expected
) -> None:
    flow = baton.new(workflow_name="bounds").add("s", step, args)
    async with baton_worker([step], ledger=f"sqlite:///{tmp_path / 'l.sqlite3'}"):
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(flow.run(client, task_queue=task_queue), 60)
        history = await client.get_workflow_handle(flow.workflow_id).fetch_history()
    text = str(info.value.cause)
    assert error_type in text and expected in text
    assert len(text) < 5000  # a clear message, not a dump
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started == [1]  # failed on its first attempt, not retried


async def test_usage_and_depth_at_the_limits_are_accepted(
    client: Client, task_queue: str, baton_worker, tmp_path: Path
) -> None:
    flow = (
        baton.new(workflow_name="bounds")
        .add("usages", _many_usages, {"n": 1000})
        .add("deep", _deep_result, {"depth": 99})
    )
    async with baton_worker([_many_usages, _deep_result], ledger=f"sqlite:///{tmp_path / 'l.db'}"):
        result = await flow.run(client, task_queue=task_queue)
    assert result.results["usages"] == {}
