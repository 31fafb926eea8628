"""``baton demo`` end to end, exactly as a user runs it: no keys, no servers."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ._util import BATON, clean_env

SEED_STEPS = ["parse", "assess_sonnet_4", "assess_opus_4", "assess_gpt_4o", "assess_synthesis"]
SEED_STEPS.append("report")
SEED_MODELS = ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "gpt-4o"]


def _children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: {pid: command line}, read from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found[int(entry)] = cmdline.decode(errors="replace")
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _section(text: str, title: str) -> str:
    """The lines under a heading of the demo's output, up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def _without_venv_on_path() -> dict[str, str]:
    """A user's environment as `make demo` runs: the virtualenv is not activated."""
    env = clean_env()
    venv_bin = Path(BATON).parent.resolve()
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != venv_bin
    )
    return env


@pytest.mark.slow
def test_demo_runs_offline_and_leaves_nothing_running(tmp_path: Path) -> None:
    # As `make demo` runs it: `.venv/bin/baton demo` from the project directory, with the
    # virtualenv not activated (so `baton` alone is not a command there).
    (tmp_path / ".venv").symlink_to(Path(BATON).parent.parent)
    env = _without_venv_on_path()
    started = time.monotonic()
    proc = subprocess.Popen(
        [".venv/bin/baton", "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Watch the demo's own children while it runs, to find the dev server it spawns.
    spawned: dict[int, str] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid, cmd in _children(proc.pid).items():
                # A process has no command line just after fork and once it is a zombie:
                # keep the one seen while it ran.
                if cmd or pid not in spawned:
                    spawned[pid] = cmd
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        done.set()
        watcher.join()
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - started

    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    # How long it takes is a figure (printed), not a pass/fail: the suite runs on 2 busy
    # processes; the communicate() timeout above bounds a demo that hangs.
    print(f"demo took {elapsed:.1f}s")
    assert "OFFLINE" in out and "stand-in" in out
    assert re.search(r"Web UI\s+http://127\.0\.0\.1:\d+", out)
    for step in SEED_STEPS:
        assert re.search(rf"^\s+[\d.]+s\s+{step}\s+completed\s", out, re.M), step
    assert "consensus score" in out
    # The dev server's own log (banner, start-up ERROR lines) is in its file, not here.
    assert not re.search(r"\bERROR\b|level=|Temporal Server:", out + err), out + err
    server_log = tmp_path / ".baton" / "temporal-server.log"
    assert re.search(rf"Server log\s+{re.escape(str(server_log))}$", out, re.M), out
    assert "Temporal Server:" in server_log.read_text()

    by_model = _section(out, "Cost per model")
    for model in SEED_MODELS:
        assert re.search(rf"^{re.escape(model)}\s+\d+\s.*\$\d+\.\d{{6}}$", by_model, re.M), model
    assert re.search(r"^total\s+5\s.*\$\d+\.\d{6}$", by_model, re.M), by_model
    per_step = _section(out, "Cost per step")
    for step in SEED_STEPS[1:]:
        assert re.search(rf"^{step}\s", per_step, re.M), step
    assert re.search(r"^cost \(USD\)\s+\$\d+\.\d{6}$", _section(out, "Totals"), re.M)

    servers = {pid: cmd for pid, cmd in spawned.items() if "start-dev" in cmd}
    assert servers, f"no Temporal dev server seen among the demo's children: {spawned}"
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in servers if _alive(pid)], "the dev server outlived the demo"
    # The ledger is kept for `baton stats` afterwards.
    assert (tmp_path / ".baton" / "demo.sqlite3").is_file()

    # The command it prints to read the ledger runs as printed, in the same shell; so does
    # plain `baton` once the virtualenv is activated, as the demo's last line says.
    printed = out.splitlines()[out.splitlines().index("The ledger keeps this run:") + 1]
    assert printed.startswith("  .venv/bin/baton stats steps demo-"), printed
    assert "source .venv/bin/activate puts `baton` on your PATH" in out.splitlines()[-1]
    for command in (printed, f"source .venv/bin/activate && {printed.replace('.venv/bin/', '')}"):
        ran = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
        for step in SEED_STEPS[1:]:
            assert re.search(rf"^{step}\s", ran.stdout, re.M), (step, ran.stdout)
