"""deploy/helm/temporal-values.yaml, the values for Temporal's Helm chart, checked without
a network or the chart: it parses, every key is one chart 1.6.0 reads (a typo is a
failure, not a silently ignored value), none is a key the chart refuses, and it agrees
with the workers' manifests (frontend address, namespace, TLS) and with the dev server the
tests run against (dynamic config, versions).

The chart's keys below were read from temporalio/helm-charts at tag temporal-1.6.0
(charts/temporal/values.yaml and templates/); bump CHART_VERSION with them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .test_manifests import DEPLOY, HELM_FRONTEND, dev_server_versions, worker_env

VALUES = DEPLOY / "helm" / "temporal-values.yaml"
CHART_VERSION = "1.6.0"
RELEASE, NAMESPACE = "temporal", "temporal"

# Every value path chart 1.6.0 reads that this file may set ("*": any name there).
_SQL = [
    "pluginName",
    "driverName",
    "databaseName",
    "connectAddr",
    "connectProtocol",
    "host",
    "port",
    "user",
    "password",
    "existingSecret",
    "secretKey",
    "passwordCommand",
    "createDatabase",
    "manageSchema",
    "maxConns",
    "maxIdleConns",
    "maxConnLifetime",
    "connectAttributes",
    "tls",
]
_SERVICE = "type port appProtocol membershipPort membershipAppProtocol httpPort annotations"
CHART_PATHS = frozenset(
    {
        "server.enabled",
        "server.image.repository",
        "server.image.tag",
        "server.image.pullPolicy",
        "server.replicaCount",
        "server.resources",
        "server.config.logLevel",
        "server.config.tls",
        "server.config.persistence.defaultStore",
        "server.config.persistence.visibilityStore",
        "server.config.persistence.numHistoryShards",
        *(f"server.config.persistence.datastores.*.sql.{key}" for key in _SQL),
        "server.config.namespaces.create",
        "server.config.namespaces.namespace",
        "server.config.metrics.tags",
        "server.dynamicConfig.*",
        *(
            f"server.{svc}.{part}"
            for svc in ("frontend", "history", "matching", "worker", "internal-frontend")
            for part in ("enabled", "replicaCount", "resources", "podDisruptionBudget")
        ),
        *(f"server.frontend.service.{key}" for key in _SERVICE.split()),
        "admintools.enabled",
        "admintools.image.repository",
        "admintools.image.tag",
        "admintools.image.pullPolicy",
        "web.enabled",
        "web.image.repository",
        "web.image.tag",
        "web.image.pullPolicy",
        "web.replicaCount",
        "schema.useHelmHooks",
        "shims.dockerize",
        "shims.elasticsearchTool",
    }
)
# Keys chart 1.6.0 fails on (templates/_deprecations.tpl): removed sub-charts and the
# pre-1.0 persistence and schema settings.
REFUSED = frozenset(
    {
        "cassandra",
        "elasticsearch",
        "prometheus",
        "grafana",
        "mysql",
        "postgresql",
        "server.config.persistence.default",
        "server.config.persistence.visibility",
        "schema.createDatabase",
        "schema.setup",
        "schema.update",
        "server.internalFrontend",
    }
)
# Dev-server settings (DEV_SERVER_ARGS) a cluster does not take, and why.
DEV_ONLY = {
    "history.transferProcessorMaxPollRPS": "the one-shard dev server's poll budget; a "
    "cluster spreads its task queues over numHistoryShards shards that each poll",
}


def values() -> dict[str, Any]:
    loaded = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "the values file must be one mapping"
    return loaded


def leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of a values tree; lists and the free-form maps are leaves."""
    free_form = prefix.endswith(".dynamicConfig") or prefix.endswith(".namespaces.namespace")
    if isinstance(node, dict) and node and not free_form:
        for key, child in node.items():
            yield from leaf_paths(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def known(path: str) -> bool:
    parts = path.split(".")
    for pattern in CHART_PATHS:
        expected = pattern.split(".")
        # A pattern names a leaf, or a subtree the chart passes through whole.
        if (
            len(parts) >= len(expected)
            and all(e in ("*", p) for e, p in zip(expected, parts, strict=False))
            and (len(parts) == len(expected) or expected[-1] in ("tls", "*", "resources"))
        ):
            return True
    return False


def unknown_paths(tree: dict[str, Any]) -> list[str]:
    if "dynamicConfig" in tree.get("server", {}):
        tree = {**tree, "server": {**tree["server"]}}
        dynamic = tree["server"].pop("dynamicConfig")
        paths = [f"server.dynamicConfig.{k}" for k in dynamic]
    else:
        paths = []
    return [p for p in [*paths, *leaf_paths(tree)] if not known(p)]


def install_command(text: str) -> str:
    found = re.search(r"helm install (?:[^\n\\]|\\\n)*", text)
    assert found, "no `helm install` command"
    return " ".join(found.group(0).replace("\\\n", " ").replace("#", " ").split())


# ------------------------------------------------------------------------ the file


def test_values_parse_and_every_key_is_one_the_chart_reads() -> None:
    tree = values()
    assert not unknown_paths(tree), (
        f"keys chart {CHART_VERSION} does not read: {unknown_paths(tree)}"
    )
    refused = [p for p in REFUSED if _get(tree, p) is not None]
    assert not refused, f"keys chart {CHART_VERSION} refuses: {refused}"


def test_a_misspelt_or_refused_key_is_caught() -> None:
    """The checks are real: the file with one typo, or with a removed sub-chart, fails."""
    tree = values()
    persistence = tree["server"]["config"].pop("persistence")
    tree["server"]["config"]["persistance"] = persistence
    assert unknown_paths(tree) == [
        p for p in leaf_paths(tree) if p.startswith("server.config.persistance")
    ]
    tree = values()
    tree["server"]["config"]["persistence"]["datastores"]["default"]["sql"]["pasword"] = "x"
    assert unknown_paths(tree) == ["server.config.persistence.datastores.default.sql.pasword"]
    tree = values()
    tree["postgresql"] = {"enabled": True}
    assert _get(tree, "postgresql") is not None


def _get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def test_persistence_is_postgresql_with_the_password_from_a_secret() -> None:
    persistence = values()["server"]["config"]["persistence"]
    stores = persistence["datastores"]
    for role in ("defaultStore", "visibilityStore"):
        sql = stores[persistence[role]]["sql"]
        assert sql["pluginName"] in ("postgres12", "postgres12_pgx"), sql
        assert sql["databaseName"] and sql["user"] and sql["connectAddr"], sql
        assert "password" not in sql, "the password belongs in a Secret (existingSecret)"
        assert sql["existingSecret"] and sql["secretKey"] == "password", sql
        assert "REPLACE_ME" in sql["connectAddr"], "the database host is a placeholder"
    names = [
        stores[persistence[r]]["sql"]["databaseName"] for r in ("defaultStore", "visibilityStore")
    ]
    assert len(set(names)) == 2, "persistence and visibility need databases of their own"
    assert isinstance(persistence["numHistoryShards"], int)


# --------------------------------------------------------- agrees with the workers


def test_frontend_is_where_the_in_cluster_workers_connect() -> None:
    """The chart names the frontend Service `<release>-frontend` (the release name alone
    when it contains the chart's name, `temporal`), in the release's namespace."""
    tree = values()
    port = tree["server"]["frontend"]["service"]["port"]
    service = RELEASE if "temporal" in RELEASE else f"{RELEASE}-temporal"
    address = f"{service}-frontend.{NAMESPACE}.svc.cluster.local:{port}"
    assert address == HELM_FRONTEND == worker_env("in-cluster")["TEMPORAL_ADDRESS"]
    for text in (VALUES.read_text(), (DEPLOY / "README.md").read_text()):
        command = install_command(text)
        assert command.startswith(f"helm install {RELEASE} temporal/temporal "), command
        assert f"--version {CHART_VERSION}" in command, command
        assert f"--namespace {NAMESPACE}" in command, command
        assert "--values deploy/helm/temporal-values.yaml" in command, command


def test_the_workers_namespace_is_created_and_tls_agrees() -> None:
    tree = values()
    namespaces = tree["server"]["config"]["namespaces"]
    assert namespaces["create"] is True
    env = worker_env("in-cluster")
    assert env["TEMPORAL_NAMESPACE"] in [n["name"] for n in namespaces["namespace"]]
    # No frontend TLS here, so the in-cluster workers connect in plaintext.
    assert _get(tree, "server.config.tls") is None
    assert env["TEMPORAL_TLS"] == "false"


def test_dynamic_config_is_what_the_tests_run_with() -> None:
    """The dev server the tests (and `baton dev`) run sets dynamic config values; the
    cluster gets the same, except settings only a one-shard dev server needs."""
    from baton_temporal.cli._devserver import DEV_SERVER_ARGS

    dev = dict(
        arg.split("=", 1) for flag, arg in itertools.pairwise(DEV_SERVER_ARGS)
        if flag == "--dynamic-config-value"
    )  # fmt: skip
    dynamic = values()["server"]["dynamicConfig"]
    for name, value in dev.items():
        if name in DEV_ONLY:
            assert name not in dynamic, name
            continue
        entries = dynamic.get(name)
        assert entries, f"{name}={value} is on in the tests but not in the Helm values"
        assert [e["value"] for e in entries] == [yaml.safe_load(value)], (name, entries)
    for name, entries in dynamic.items():  # the server's format: a list of {value, constraints}
        assert isinstance(entries, list) and all("value" in e for e in entries), name


@pytest.mark.parametrize("component", ["server", "admintools"])
def test_versions_are_pinned_and_close_to_the_tested_server(component: str) -> None:
    tree = values()
    tag = str(tree[component]["image"]["tag"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), tag
    assert tag == str(tree["server"]["image"]["tag"]), "admin-tools runs the server's schema"
    major, minor, _ = (int(p) for p in tag.split("."))
    assert (major, minor) >= (1, 28), "worker versioning (BATON_BUILD_ID) needs 1.28+"
    tested = [int(p) for p in dev_server_versions()["server"].split(".")]
    assert major == tested[0] and abs(minor - tested[1]) <= 1, (tag, tested)
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(tree["web"]["image"]["tag"]))
