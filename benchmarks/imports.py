"""Import cost of baton_temporal against temporalio.worker, and ``baton --help`` wall time.

    python -m benchmarks.imports [--runs 15]       (make bench-imports)

Each figure is the median of ``--runs`` fresh interpreters (caches warm: the first,
cold run is dropped). Imports are timed inside the interpreter (wall and process CPU
around the import statement, so interpreter start-up is excluded; CPU is the steadier
figure on a shared machine); ``baton --help`` is the
wall time of the whole process, start-up included, as a user waits for it.
Targets (issue 12): ``import baton_temporal`` with the public API touched at most
0.15 s more than ``import temporalio.worker``; ``baton --help`` under 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "temporalio.worker": "import temporalio.worker",
    "baton_temporal (bare)": "import baton_temporal",
    "baton_temporal (step, Flow, BatonPlugin)": (
        "import baton_temporal as baton; baton.step; baton.Flow; baton.BatonPlugin"
    ),
    "baton_temporal.workflow (workflow code)": "import baton_temporal.workflow",
}
TIMER = (
    "import time; t, c = time.perf_counter(), time.process_time(); {stmt}; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)
IMPORT_TARGET_S = 0.15
HELP_TARGET_S = 0.3


CODE = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(CODE)}


def _import_time(stmt: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(stmt=stmt)],
        capture_output=True,
        text=True,
        check=True,
        cwd=CODE,
        env=_env(),
    ).stdout
    wall, cpu = out.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _help_time() -> float:
    baton = Path(sys.executable).parent / "baton"
    start = time.perf_counter()
    subprocess.run([str(baton), "--help"], capture_output=True, check=True, cwd=CODE, env=_env())
    return time.perf_counter() - start


def main(runs: int) -> dict[str, object]:
    samples: dict[str, list[float]] = {name: [] for name in [*CASES, "baton --help"]}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    for i in range(runs + 1):  # interleaved; run 0 is the cold one, dropped
        for name, stmt in CASES.items():
            wall_s, cpu_s = _import_time(stmt)
            if i:
                samples[name].append(wall_s)
                cpu[name].append(cpu_s)
        help_s = _help_time()
        if i:
            samples["baton --help"].append(help_s)
    median = {name: statistics.median(s) for name, s in samples.items()}
    api = "baton_temporal (step, Flow, BatonPlugin)"
    extra = median[api] - median["temporalio.worker"]
    cpu_median = {name: statistics.median(s) for name, s in cpu.items()}
    return {
        "runs": runs,
        "median_wall_s": {k: round(v, 4) for k, v in median.items()},
        "median_cpu_s": {k: round(v, 4) for k, v in cpu_median.items()},
        "max_wall_s": {k: round(max(s), 4) for k, s in samples.items()},
        "public_api_minus_temporalio_worker_s": round(extra, 4),
        "same_in_cpu_s": round(cpu_median[api] - cpu_median["temporalio.worker"], 4),
        "import_target_met": extra <= IMPORT_TARGET_S,
        "help_target_met": median["baton --help"] < HELP_TARGET_S,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--code", type=Path, help="measure another checkout (default: this one)")
    args = parser.parse_args()
    if args.code:
        CODE = args.code.resolve()
    text = json.dumps({"code": str(CODE), **main(args.runs)}, indent=2)
    print(text)
    if not args.code:
        (Path(__file__).parent / "results" / "imports.json").write_text(text + "\n")
