"""deploy/ stays true to the code, in both directions.

test_manifests.py checks that every variable the manifests set is one the code reads.
Here: every variable the worker reads is documented in deploy/README.md's Settings table,
and every command the manifests and deploy/README.md run exists with the options they
pass: ``baton ...`` against the real argument parser, ``python -m X`` against the
importable modules, ``python -c`` as Python, ``temporal ...`` against the ``temporal``
CLI of the dev server the tests use (its ``--help``; nothing connects anywhere).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import subprocess
from collections.abc import Iterator
from functools import cache

import pytest

from .test_manifests import (
    DEPLOY,
    OVERLAYS,
    ROOT,
    TEMPORAL_ENVCONFIG_NAMES,
    TEMPORAL_ENVCONFIG_PREFIXES,
    compose,
    dockerfile_exec_form,
    env_names_in_source,
    pod_spec,
)

README = DEPLOY / "README.md"
WORKER_IMAGE = "baton-temporal-worker"
# Variables the code reads outside a deployed worker, and where.
NOT_WORKER_SETTINGS = {
    "BATON_DEMO_MODEL": "baton demo",
    "BATON_DEMO_MODELS": "baton demo",
    "BATON_TEMPORAL_CLI": "baton dev / demo: which dev server binary to start",
    "BATON_PG_BIN": "baton_temporal.testing.postgres: the test PostgreSQL's binaries",
    "BATON_PG_OS_USER": "baton_temporal.testing.postgres: the user it runs as under root",
    "BATON_CODEC_TOKEN": "the codec server (python -m baton_temporal.codec serve)",
}
OUR_PREFIXES = ("BATON_", "TEMPORAL_", "ANTHROPIC_", "OPENAI_")


# ------------------------------------------------------------------- variables


@cache
def variables_read() -> dict[str, list[str]]:
    """{name: [modules]} of every variable of ours the code reads."""
    found: dict[str, list[str]] = {}
    for package in ("baton_temporal", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in env_names_in_source(path.read_text(encoding="utf-8")):
                if name.startswith(OUR_PREFIXES):
                    found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def documented_settings() -> set[str]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Settings") :]
    return set(re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", table))


def test_every_variable_the_worker_reads_is_documented() -> None:
    documented = documented_settings()
    prefixes = tuple(n[:-1] for n in documented if n.endswith("*"))
    wanted = {*variables_read(), *TEMPORAL_ENVCONFIG_NAMES} - set(NOT_WORKER_SETTINGS)
    missing = {
        name: variables_read().get(name, ["temporalio's envconfig"])
        for name in sorted(wanted)
        if name not in documented and not name.startswith(prefixes)
    }
    assert not missing, (
        f"read by the worker but missing from deploy/README.md's Settings table: {missing}; "
        "add a row (where to set it, what it means), or, if no deployed worker reads it, "
        "list it in NOT_WORKER_SETTINGS with the reason"
    )
    assert set(TEMPORAL_ENVCONFIG_PREFIXES) <= {f"{p}" for p in prefixes}


def test_settings_outside_the_worker_are_still_read_and_not_documented_as_worker_ones() -> None:
    for name, where in NOT_WORKER_SETTINGS.items():
        assert name in variables_read(), f"{name} ({where}) is no longer read: drop it here"
        assert name not in documented_settings(), f"{name} is documented as a worker setting"


def test_documented_settings_are_read_by_the_code() -> None:
    read = {*variables_read(), *TEMPORAL_ENVCONFIG_NAMES}
    stale = [n for n in documented_settings() if not n.endswith("*") and n not in read]
    assert not stale, f"deploy/README.md documents settings nothing reads: {stale}"


# -------------------------------------------------------------------- commands


def manifest_commands() -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of every command a container of the worker image runs."""
    yield "Dockerfile CMD", dockerfile_exec_form("CMD")
    for name, svc in compose()["services"].items():
        if not str(svc.get("image", "")).startswith(WORKER_IMAGE):
            continue
        command = svc.get("command") or dockerfile_exec_form("CMD")
        yield f"docker-compose.yml:{name}", list(command)
        test = (svc.get("healthcheck") or {}).get("test")
        if test and test[0] == "CMD":
            yield f"docker-compose.yml:{name} healthcheck", list(test[1:])
    for overlay in sorted(OVERLAYS):
        spec = pod_spec(overlay)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container["image"].rsplit(":", 1)[0].endswith(WORKER_IMAGE):
                argv = container.get("args") or dockerfile_exec_form("CMD")
                yield f"k8s/{overlay}:{container['name']}", list(argv)


def documented_commands() -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of the baton / temporal / python -m commands deploy/README.md shows:
    lines of its sh blocks, and inline code spans."""
    text = README.read_text(encoding="utf-8")
    candidates = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        candidates += block.replace("\\\n", " ").splitlines()
    candidates += re.findall(r"`((?:baton|temporal|python -m) [^`]+)`", text)
    for line in candidates:
        words = shlex.split(line, comments=True)
        if words and (words[0] in ("baton", "temporal") or words[:2] == ["python", "-m"]):
            yield f"deploy/README.md: {line.strip()}", words


def _baton_help(path: list[str]) -> str:
    from baton_temporal.cli._commands import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*path, "--help"])
    assert exited.value.code == 0, f"`baton {' '.join(path)}` is not a command"
    return out.getvalue()


@cache
def _temporal_help(path: tuple[str, ...]) -> str:
    from baton_temporal.cli._devserver import temporal_cli_path

    ran = subprocess.run(
        [temporal_cli_path(), *path, "--help"], capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, f"`temporal {' '.join(path)}` is not a command: {ran.stderr}"
    return ran.stdout


def _offers(help_text: str, flag: str) -> bool:
    return re.search(rf"(^|[\s,\[]){re.escape(flag)}([\s,=\]]|$)", help_text, re.M) is not None


def check_command(argv: list[str], *, complete: bool) -> None:
    """Raise AssertionError when ``argv`` names a command or an option that does not
    exist. ``complete``: the command runs as it is (a manifest), so it must parse whole;
    documentation may leave values out (``baton worker --health-port``)."""
    program, *rest = argv
    words = [w for w in rest if not w.startswith("-")]
    flags = [w.split("=", 1)[0] for w in rest if w.startswith("-")]
    if program == "baton":
        from baton_temporal.cli._commands import build_parser

        path: list[str] = []
        for word in words:  # the subcommand path: as deep as `--help` accepts it
            try:
                _baton_help([*path, word])
            except AssertionError:
                break
            path.append(word)
        assert path, f"`baton {words[0] if words else ''}` is not a command"
        help_text = _baton_help(path)
        for flag in flags:
            assert _offers(help_text, flag), f"`baton {' '.join(path)}` has no option {flag}"
        if complete:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    build_parser().parse_args(rest)
                except SystemExit:
                    raise AssertionError(f"`{shlex.join(argv)}` fails: {err.getvalue()}") from None
    elif program == "temporal":
        path = []
        for word in words:
            if path and not _temporal_help(tuple(path)).count(f"  {word} "):
                break  # not a subcommand of what we have: an argument
            path.append(word)
        # The CLI checks every flag (its own and the global ones) before it prints help.
        from baton_temporal.cli._devserver import temporal_cli_path

        ran = subprocess.run(
            [temporal_cli_path(), *rest, "--help"], capture_output=True, text=True, timeout=30
        )
        assert ran.returncode == 0, f"`{shlex.join(argv)}` is refused: {ran.stderr.strip()}"
    elif program == "python" and rest[:1] == ["-m"]:
        module = rest[1]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"`python -m {module}`: no module {module}"
        runnable = spec.submodule_search_locations is None or importlib.util.find_spec(
            f"{module}.__main__"
        )
        assert runnable, f"`python -m {module}`: the package has no __main__"
    elif program == "python" and rest[:1] == ["-c"]:
        compile(rest[1], "<python -c>", "exec")
    else:
        raise AssertionError(f"a command of unknown kind: {shlex.join(argv)}")


def test_every_command_the_manifests_run_exists() -> None:
    checked = []
    for where, argv in manifest_commands():
        try:
            check_command(argv, complete=True)
        except AssertionError as err:
            raise AssertionError(f"{where}: {err}") from None
        checked.append(where)
    assert any("migrate" in w for w in checked) and any("healthcheck" in w for w in checked)


def test_every_command_deploy_readme_shows_exists() -> None:
    seen = []
    for where, argv in documented_commands():
        try:
            check_command(argv, complete=False)
        except AssertionError as err:
            raise AssertionError(f"{where}: {err}") from None
        seen.append(argv[0])
    assert {"baton", "temporal", "python"} <= set(seen), seen


@pytest.mark.parametrize(
    ("argv", "complete", "problem"),
    [
        (["baton", "db", "upgrad", "--wait", "2m"], True, "`baton db` has no option --wait"),
        (["baton", "db", "upgrade", "--wait", "2 minutes"], True, "fails"),
        (["baton", "worker", "--health-prt"], False, "has no option --health-prt"),
        (["baton", "wrker"], False, "is not a command"),
        (["python", "-m", "workers.wrker"], True, "no module"),
        (["temporal", "worker", "deployment", "set-current-version", "--buildid", "X"], False,
         "unknown flag: --buildid"),
    ],
)  # fmt: skip
def test_a_command_that_does_not_exist_is_caught(
    argv: list[str], complete: bool, problem: str
) -> None:
    with pytest.raises(AssertionError, match=re.escape(problem)):
        check_command(argv, complete=complete)
