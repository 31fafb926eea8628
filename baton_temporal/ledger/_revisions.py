"""The ledger migrations' revision ids, read from the migration files without Alembic or
SQLAlchemy: a worker checks the database's revision at every start, and loading Alembic
(8 MiB) or SQLAlchemy (~17 MiB) for two strings would cost every worker process.

Example::

    head_revisions()       # frozenset({'0003_...'}): what `baton db upgrade` reaches
"""

from __future__ import annotations

import ast
import logging
from functools import cache
from pathlib import Path
from typing import Any

from ._errors import _FIX_MIGRATE, LedgerConfigError, LedgerNotMigrated

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "check_revisions",
    "head_revisions",
    "known_revisions",
]

log = logging.getLogger("baton_temporal.ledger")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Alembic's bookkeeping table. Not the default `alembic_version`, so that the ledger can
# live in an application database that has Alembic migrations of its own.
VERSION_TABLE = "baton_ledger_alembic_version"


# The migration files name their revisions in plain assignments, read here without
# running them.
@cache
def _revision_graph(directory: Path = MIGRATIONS_DIR) -> dict[str, tuple[str, ...]]:
    """Each revision of a migrations directory and the revisions it follows."""
    graph: dict[str, tuple[str, ...]] = {}
    for path in sorted((directory / "versions").glob("*.py")):
        names: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign | ast.AnnAssign)
                and isinstance(
                    target := (node.targets[0] if isinstance(node, ast.Assign) else node.target),
                    ast.Name,
                )
                and target.id in ("revision", "down_revision")
                and node.value is not None
            ):
                names[target.id] = ast.literal_eval(node.value)
        if "revision" not in names:
            continue
        down = names.get("down_revision")
        graph[str(names["revision"])] = (
            () if down is None else (down,) if isinstance(down, str) else tuple(down)
        )
    return graph


def head_revisions(directory: Path = MIGRATIONS_DIR) -> frozenset[str]:
    """The revisions no other migration follows (what ``alembic upgrade head`` reaches)."""
    graph = _revision_graph(directory)
    if not graph:
        # A broken install: with no revision known, any database (even an empty one)
        # would pass the check, and usage writes would fail later on missing tables.
        raise LedgerConfigError(
            f"the ledger migrations are missing from this install ({directory / 'versions'} "
            "has no revision); reinstall baton-temporal (pip install --force-reinstall "
            "baton-temporal)"
        )
    followed = {down for downs in graph.values() for down in downs}
    return frozenset(set(graph) - followed)


def known_revisions() -> frozenset[str]:
    """Every revision this release's migrations define."""
    return frozenset(_revision_graph())


def check_revisions(url: str, current: frozenset[str]) -> bool:
    """Whether a database at revisions ``current`` is usable: True at the head, False
    (with a warning) at revisions newer than this release knows, whose changes are
    additive; :class:`LedgerNotMigrated` naming the fix otherwise.

    Example::

        check_revisions("postgresql://db/baton", head_revisions())   # True
    """
    heads = head_revisions()
    if current == heads:
        return True
    if not current:
        raise LedgerNotMigrated(f"the ledger database {url} has no ledger tables; {_FIX_MIGRATE}")
    unknown = current - known_revisions()
    if unknown:
        log.warning(
            "ledger database %s is at revision %s, newer than this baton-temporal knows",
            url,
            ", ".join(sorted(unknown)),
        )
        return False
    raise LedgerNotMigrated(
        f"the ledger database {url} is at revision {', '.join(sorted(current))}, "
        f"this baton-temporal needs {', '.join(sorted(heads))}; {_FIX_MIGRATE}"
    )
