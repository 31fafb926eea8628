"""README's "Your own steps, offline", run as written: its step module and its commands,
in a shell with the virtualenv activated, in a directory that is not on PYTHONPATH."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import pytest

from baton_temporal.cli._demo import free_port

from ._util import BATON, clean_env

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- offline-steps:"


def documented() -> tuple[str, list[str]]:
    """(the step module, the shell commands) of README's offline section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(MARKER) :]
    module = re.search(r"```python\n(.*?)```", section, re.S)
    commands = re.search(r"```sh\n(.*?)```", section, re.S)
    assert module and commands, "README's offline section lost its code blocks"
    lines = [line.split("#")[0].strip() for line in commands.group(1).splitlines()]
    return module.group(1), [line for line in lines if line]


async def _shell(command: str, cwd: Path, env: dict[str, str], timeout: float = 90) -> str:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, (command, out.decode(), err.decode())
    return out.decode()


@pytest.mark.slow
async def test_readme_offline_steps_run_as_documented(tmp_path: Path) -> None:
    module, commands = documented()
    assert commands == [
        "python mysteps.py",
        "baton dev --offline --steps mysteps",
        "baton start flow.json --wait",
    ], commands
    write_flow, dev, start = commands
    (tmp_path / "mysteps.py").write_text(module)
    # An activated virtualenv: `python` and `baton` are its programs. The directory of
    # mysteps.py is not on PYTHONPATH (which holds only the code under test).
    env = clean_env()
    env["PATH"] = f"{Path(BATON).parent}{os.pathsep}{env.get('PATH', '')}"
    assert str(tmp_path) not in env.get("PYTHONPATH", "")

    await _shell(write_flow, tmp_path, env)
    assert "workflow_id" not in json.loads((tmp_path / "flow.json").read_text())

    port, ui_port = free_port(), free_port()  # 7233/8233 may be taken on a shared machine
    server = await asyncio.create_subprocess_exec(
        "bash", "-c", f"exec {dev} --port {port} --ui-port {ui_port}", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any(line.startswith("Start a flow:") for line in seen):
                line = (await server.stdout.readline()).decode()
                assert line, f"baton dev ended before it was ready:\n{''.join(seen)}"
                seen.append(line)
        banner = "".join(seen)
        assert "summarize" in banner and "OFFLINE stand-in" in banner, banner
        out = await _shell(start, tmp_path, {**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})
        assert re.search(r"^summarize\s+completed\s+gpt-4o\s+1\s", out, re.M), out
        assert '"summary": "{\\"score\\"' in out, out  # the stand-in's answer
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(server.communicate(), 60)
    assert server.returncode == 0, (rest.decode(), err.decode())
    assert "baton dev: stopped" in rest.decode()
