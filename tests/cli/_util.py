"""Run the real ``baton`` program as a user would: a subprocess of the installed script.

The subprocess is awaited with asyncio, so a worker running in the test's event loop
keeps serving the flows the command starts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BATON = str(Path(sys.executable).parent / "baton")

# Settings that would change what the commands do (real keys, other servers/ledgers).
SCRUBBED = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "BATON_OPENAI_COMPATIBLE_BASE_URL",
    "BATON_OPENAI_COMPATIBLE_API_KEY",
    "BATON_DEMO_MODEL",
    "BATON_DEMO_MODELS",
    "BATON_LEDGER_URL",
    "BATON_STEPS",
    "BATON_TASK_QUEUE",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr's error lines. A `baton: note:` line is informational and depends on
        timing (e.g. the worker's first poll not yet seen by the server on a busy machine),
        so it is left out of the one-line-error checks."""
        return [
            line
            for line in self.err.splitlines()
            if line.strip() and not line.startswith("baton: note:")
        ]


async def run_baton(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    program: tuple[str, ...] = (BATON,),
) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        *program,
        *args,
        env=dict(env) if env is not None else clean_env(),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Ran(proc.returncode or 0, out.decode(), err.decode())
