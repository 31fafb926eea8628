"""Import cost of baton_temporal against temporalio.worker, and ``baton --help`` wall time.

    python -m benchmarks.imports [--runs 15]       (make bench-imports)

Each figure is the median of ``--runs`` fresh interpreters (caches warm: the first,
cold run is dropped). Imports are timed inside the interpreter (``perf_counter`` around
the import statement, so interpreter start-up is excluded); ``baton --help`` is the
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
TIMER = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
IMPORT_TARGET_S = 0.15
HELP_TARGET_S = 0.3


def _import_time(stmt: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(stmt=stmt)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    ).stdout
    return float(out.strip().splitlines()[-1])


def _help_time() -> float:
    baton = Path(sys.executable).parent / "baton"
    start = time.perf_counter()
    subprocess.run([str(baton), "--help"], capture_output=True, check=True)
    return time.perf_counter() - start


def main(runs: int) -> dict[str, object]:
    samples: dict[str, list[float]] = {name: [] for name in [*CASES, "baton --help"]}
    for i in range(runs + 1):  # interleaved; run 0 is the cold one, dropped
        for name, stmt in CASES.items():
            value = _import_time(stmt)
            if i:
                samples[name].append(value)
        value = _help_time()
        if i:
            samples["baton --help"].append(value)
    median = {name: statistics.median(s) for name, s in samples.items()}
    extra = median["baton_temporal (step, Flow, BatonPlugin)"] - median["temporalio.worker"]
    return {
        "runs": runs,
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "max_s": {k: round(max(s), 4) for k, s in samples.items()},
        "public_api_minus_temporalio_worker_s": round(extra, 4),
        "import_target_met": extra <= IMPORT_TARGET_S,
        "help_target_met": median["baton --help"] < HELP_TARGET_S,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    text = json.dumps(main(args.runs), indent=2)
    print(text)
    (Path(__file__).parent / "results" / "imports.json").write_text(text + "\n")
