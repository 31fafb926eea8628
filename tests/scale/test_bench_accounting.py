"""bench-scale's PostgreSQL CPU column counts only the PostgreSQL the benchmark started:
the machine is shared, and another user's PostgreSQL server is called ``postgres`` too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.infra import cpu_by_process, own_cpu

# Names itself "postgres" (what /proc/PID/stat shows for a PostgreSQL process), writes its
# pid, burns the CPU seconds it is given, says so, then idles until it is killed.
BURNER = """
import os, sys, time
with open("/proc/self/comm", "w") as f:
    f.write("postgres")
out = sys.argv[1]
with open(out + ".pid", "w") as f:
    f.write(str(os.getpid()))
end = time.process_time() + float(sys.argv[2])
while time.process_time() < end:
    pass
os.rename(out + ".pid", out + ".done")
time.sleep(120)
"""


def _wait_done(path: Path) -> int:
    done = path.with_name(path.name + ".done")
    for _ in range(600):
        if done.exists():
            return int(done.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path.name}: the burner did not finish within 30 s")


def test_postgres_cpu_counts_ours_not_another_users(tmp_path: Path) -> None:
    before = cpu_by_process()
    ours = subprocess.Popen([sys.executable, "-c", BURNER, str(tmp_path / "ours"), "0.2"])
    # Another user's server: started through a shell that exits at once, so it is no
    # descendant of this process.
    subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c \'{BURNER}\' "{tmp_path / "theirs"}" 0.8 &'],
        check=True,
    )
    try:
        _wait_done(tmp_path / "ours")
        theirs = _wait_done(tmp_path / "theirs")
        after = cpu_by_process()
        # Both are visible and named postgres; the foreign one burned 0.8 s.
        assert after[ours.pid][0] == after[theirs][0] == "postgres"
        assert after[theirs][1] >= 0.75
        counted = own_cpu(before, after, "postgres")
        assert 0.15 <= counted < 0.75
    finally:
        ours.kill()
        ours.wait()
        for left in tmp_path.glob("theirs.*"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(left.read_text()), signal.SIGKILL)
