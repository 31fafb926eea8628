"""bench-scale stopped with SIGTERM (``timeout``, a CI job cancelled) stops what it started:
the dev server, PostgreSQL, the stand-in and the worker are not left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _descendants(root: int) -> dict[int, str]:
    """{pid: command name} of every process descended from ``root``."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        names[int(entry)] = raw[raw.index("(") + 1 : raw.rindex(")")]
        parent[int(entry)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    found: dict[int, str] = {}
    for pid in names:
        up = pid
        for _ in range(64):
            up = parent.get(up, 0)
            if up == root:
                found[pid] = names[pid]
                break
            if up <= 1:
                break
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
def test_sigterm_mid_run_leaves_no_process_behind(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = tmp_path / "driver.log"
    args = ["--only", "baton", "--flows", "20", "--rounds", "1", "--warmup", "1"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scale", *args, "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        # A file, not a pipe: processes left behind would hold a pipe open.
        stderr=log.open("w"),
    )
    started: dict[int, str] = {}
    try:
        # Mid-run: PostgreSQL, the dev server and the worker are all up.
        for _ in range(1200):
            started = _descendants(driver.pid)
            names = set(started.values())
            if {"postgres", "temporal"} <= names and any(
                "benchmarks.scale_worker" in _cmdline(p) for p in started
            ):
                break
            assert driver.poll() is None, log.read_text()[-2000:]
            time.sleep(0.05)
        else:
            raise AssertionError("the benchmark did not start its processes within 60 s")
        driver.send_signal(signal.SIGTERM)
        driver.wait(timeout=60)
        for _ in range(200):
            left = {p: n for p, n in started.items() if _running(p)}
            if not left:
                break
            time.sleep(0.05)
        assert left == {}, f"left running: {left}"
        assert driver.returncode == 128 + signal.SIGTERM, log.read_text()[-2000:]
        assert "terminated (SIGTERM)" in log.read_text()
    finally:
        for pid in started:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if driver.poll() is None:
            driver.kill()
            driver.wait()
