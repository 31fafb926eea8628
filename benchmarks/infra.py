"""Processes the benchmark runs: the dev server, workers, the stand-in, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from baton_temporal.cli._devserver import temporal_cli_path

REPO = Path(__file__).resolve().parent.parent

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> Iterator[tuple[int, str, int, float]]:
    """(pid, command name, parent pid, CPU seconds so far) of every readable process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        yield int(entry), name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _foreign_cpu() -> dict[int, float]:
    """{pid: CPU seconds so far} of processes that are neither this one nor descended
    from it: on a shared machine, the noise."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for pid, _name, ppid, seconds in _proc_stats():
        parent[pid] = ppid
        cpu[pid] = seconds
    return {pid: c for pid, c in cpu.items() if not _descends(pid, parent)}


def _descends(pid: int, parent: dict[int, int]) -> bool:
    """Whether ``pid`` is this process or one of its descendants."""
    me = os.getpid()
    for _ in range(64):
        if pid == me:
            return True
        if pid <= 1:
            return False
        pid = parent.get(pid, 0)
    return False


def own_cpu(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], name: str
) -> float:
    """CPU seconds that processes called ``name`` and started by this one (or by its
    children) used between two :func:`cpu_by_process` snapshots. Only ours: on a shared
    machine other people run PostgreSQL servers too.

    Example::

        before = cpu_by_process()
        ...
        postgres_s = own_cpu(before, cpu_by_process(), "postgres")
    """
    parent = {pid: ppid for pid, _name, ppid, _seconds in _proc_stats()}
    return sum(
        cpu - before.get(pid, (name, 0.0))[1]
        for pid, (n, cpu) in after.items()
        if n == name and _descends(pid, parent)
    )


class ForeignCPU:
    """Samples other processes' CPU every 2 s while the benchmark runs."""

    def __init__(self) -> None:
        self.initial = _foreign_cpu()
        self.last: dict[int, float] = dict(self.initial)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(2)
            self.last.update(_foreign_cpu())

    async def stop(self) -> float:
        """CPU seconds used by other processes since start (those that exited between
        samples lose up to 2 s of it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.last.update(_foreign_cpu())
        return sum(c - self.initial.get(pid, 0.0) for pid, c in self.last.items())


def run_main(main: Callable[[], Awaitable[None]]) -> None:
    """``asyncio.run(main())``, with SIGTERM handled as Ctrl-C is: the main task is
    cancelled, so the dev servers, PostgreSQL, stand-in and workers it started are stopped
    on the way out (killed outright, the driver would leave them running); exit status 143.

    Example::

        if __name__ == "__main__":
            run_main(main)
    """
    terminated = False

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None

        def on_term() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_term)
        await main()

    try:
        asyncio.run(guarded())
    except asyncio.CancelledError:
        if not terminated:
            raise
        print("terminated (SIGTERM); every process it started is stopped", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """{pid: (command name, CPU seconds so far)} for every process we can read."""
    return {pid: (name, seconds) for pid, name, _ppid, seconds in _proc_stats()}


def cpu_delta(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    labels: dict[int, str],
) -> dict[str, float]:
    """CPU seconds used between two snapshots, by label (pid label, else command name)."""
    used: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        spent = cpu - before.get(pid, (name, 0.0))[1]
        if spent <= 0:
            continue
        label = labels.get(pid) or name
        used[label] = used.get(label, 0.0) + spent
    return used


class Proc:
    """A child process that speaks one JSON object per line on stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @classmethod
    async def start(
        cls, name: str, args: list[str], *, env: dict[str, str], log_dir: Path
    ) -> tuple[Proc, dict[str, Any]]:
        log = log_dir / f"{name}.log"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log.open("ab"),
            env=env,
            cwd=str(REPO),
            limit=64 * 1024 * 1024,
        )
        me = cls(name, proc, log)
        first = await me._read(timeout=120)
        return me, first

    async def _read(self, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} exited early; its log ends:\n{tail}")
        return json.loads(line)

    async def ask(self, command: str, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((command + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def close(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"quit\n")
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class WorkerSpec:
    name: str
    kind: str  # "baton" | "plain"
    ledger: str = "none"
    task_queue: str = ""


@dataclass
class Cluster:
    """One dev server and one worker process per comparator, each on its own queue."""

    env: WorkflowEnvironment
    workers: dict[str, Proc] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    profilers: list[Any] = field(default_factory=list)
    server_pid: int | None = None

    @property
    def client(self) -> Client:
        return self.env.client

    @classmethod
    async def start(
        cls,
        specs: list[WorkerSpec],
        *,
        child_env: dict[str, str],
        log_dir: Path,
        server_args: list[str] | None = None,
        activity_slots: int | None = None,
    ) -> Cluster:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli_path(),
            ui=False,
            dev_server_log_level="error",
            dev_server_extra_args=list(server_args or []),
        )
        cluster = cls(env)
        address = env.client.service_client.config.target_host
        cluster.server_pid = _server_pid(address.rsplit(":", 1)[-1])
        try:
            starts = []
            for spec in specs:
                queue = f"bench-{spec.name}-{uuid.uuid4().hex[:6]}"
                cluster.queues[spec.name] = queue
                args = ["-m", "benchmarks.worker", "--kind", spec.kind, "--address", address]
                args += ["--task-queue", queue, "--ledger", spec.ledger]
                if activity_slots:
                    args += ["--max-concurrent-activities", str(activity_slots)]
                starts.append(
                    Proc.start(f"worker-{spec.name}", args, env=child_env, log_dir=log_dir)
                )
            for spec, (proc, _ready) in zip(specs, await asyncio.gather(*starts), strict=True):
                cluster.workers[spec.name] = proc
        except BaseException:
            await cluster.close()
            raise
        return cluster

    async def profile(self, names: list[str], out: Path) -> None:
        """Sample the named workers with py-spy until they exit (collapsed stacks)."""
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists():
            raise RuntimeError("--profile needs py-spy: pip install py-spy")
        for name in names:
            proc = await asyncio.create_subprocess_exec(
                str(spy),
                "record",
                "-p",
                str(self.workers[name].pid),
                "-f",
                "raw",
                "-r",
                "200",
                "--gil",
                "--nonblocking",
                "-o",
                str(out / f"profile-{name}.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            self.profilers.append(proc)

    async def stats(self, name: str) -> dict[str, list[float]]:
        reply = await self.workers[name].ask("stats")
        return reply["timings"]

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.workers.values()), return_exceptions=True)
        for proc in self.profilers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 30)
        await self.env.shutdown()


def _server_pid(port: str) -> int | None:
    """The pid of the dev server listening on ``port`` (by its command line)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"start-dev" in args and b"--port" in args and port.encode() in args:
            return int(entry)
    return None


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
