"""The package layout: workflow code stays apart from the worker side.

What runs in workflow code (``baton_temporal.workflow``) may import only the flow
package, temporalio and the standard library. The demo and the CLI commands do not
import each other, the library does not import the repository's ``workers`` program,
and the wheel installs no top-level ``workers`` package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "baton_temporal"
WORKER_SIDE = ("sqlalchemy", "anthropic", "openai", "httpx", "genai_prices", "psycopg", "yaml")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, absolute-or-relative module) of every import in ``path``."""
    tree = ast.parse(path.read_text())
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def _resolve(path: Path, level: int, module: str) -> str:
    if level == 0:
        return module
    parts = list(path.relative_to(ROOT).with_suffix("").parts)[:-level]
    return ".".join([*parts, module] if module else parts)


def test_workflow_package_imports_only_flow_temporalio_and_stdlib() -> None:
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in sorted((PACKAGE / "workflow").glob("*.py")):
        for level, module in _imports(path):
            name = _resolve(path, level, module)
            top = name.split(".")[0]
            allowed = (
                top in stdlib
                or top == "temporalio"
                or name.startswith(("baton_temporal.flow", "baton_temporal.workflow"))
            )
            if not allowed:
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_workflow_code_loads_no_worker_side_module() -> None:
    code = (
        "import json, sys\n"
        "import baton_temporal.workflow, baton_temporal.flow\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    worker_side = [
        m
        for m in loaded
        if m.split(".")[0] in WORKER_SIDE
        or m.startswith(
            (
                "baton_temporal.ledger",
                "baton_temporal.llm",
                "baton_temporal.steps",
                "baton_temporal.pricing",
                "baton_temporal._plugin",
                "baton_temporal.cli",
                "baton_temporal.examples",
            )
        )
    ]
    assert worker_side == []
    # The check above is only meaningful if the workflow package really was loaded.
    assert "baton_temporal.workflow._flow_workflow" in loaded


def test_library_never_imports_the_workers_program() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in PACKAGE.rglob("*.py")
        for level, module in _imports(path)
        if level == 0 and module.split(".")[0] == "workers"
    ]
    assert offenders == []


def test_demo_and_commands_do_not_import_each_other() -> None:
    cli = PACKAGE / "cli"
    demo = {_resolve(cli / "_demo.py", lv, m) for lv, m in _imports(cli / "_demo.py")}
    common = {_resolve(cli / "_common.py", lv, m) for lv, m in _imports(cli / "_common.py")}
    assert "baton_temporal.cli._commands" not in demo
    assert not any(m.startswith("baton_temporal.cli.") for m in common)


@pytest.mark.slow
def test_wheel_installs_no_top_level_workers_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("baton_temporal-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "baton_temporal" in tops
    assert "workers" not in tops
    assert "baton_temporal/examples/seed.py" in zipfile.ZipFile(wheel).namelist()


def test_the_result_a_client_decodes_has_real_annotations() -> None:
    """``handle.result()`` resolves FlowResult's type hints on every decode; string
    annotations (``from __future__ import annotations``) made that 3.8x dearer. The
    decoded result is typed all the way down."""
    import asyncio
    import dataclasses

    from temporalio.converter import DataConverter

    from baton_temporal import FlowResult, StepState

    for cls in (FlowResult, StepState):
        stringly = [f.name for f in dataclasses.fields(cls) if isinstance(f.type, str)]
        assert stringly == [], f"{cls.__name__} has string annotations: {stringly}"
    sent = FlowResult(
        workflow_id="w",
        workflow_name="n",
        results={"a": {"x": 1}},
        steps={"a": StepState(step="a", state="completed", attempt=2)},
        failed=["b"],
    )
    converter = DataConverter.default
    payloads = asyncio.run(converter.encode([sent]))
    (got,) = asyncio.run(converter.decode(payloads, [FlowResult]))
    assert got == sent
    assert isinstance(got.steps["a"], StepState)
