"""The ledger's usage INSERT on PostgreSQL, handed to psycopg directly.

Every LLM step waits for this write before it completes, so it sits on the critical path
of every flow level. Through SQLAlchemy's execute path (execution context, result
wrapping, the greenlet bridge to the async driver) a one-row write cost more than the
database's own work: 0.61 ms of worker CPU against 0.27 ms straight through psycopg, and
2.7 ms against 1.4 ms of wall time after the process idled 50 ms, as it does between the
steps of a flow. The statement text depends only on the number of rows, so psycopg
prepares it on the server after a few uses.

It runs on a raw cursor (PostgreSQL's own ``$1`` placeholders). psycopg caches its parse
of ``%s`` placeholders only for statements of at most 50 parameters, and a multi-row
insert of ~30 columns has more, so every write was parsed again: 135 us of worker CPU per
row in a 10-row batch against 25 us on the raw cursor (client CPU, this machine).

Values still go through the ledger's bind conversions (``_rows.utc_value`` and
``money_value``, which the column types ``UTCDateTime`` and ``Money`` use too), so this
path stores exactly what the SQLAlchemy path would. No SQLAlchemy here: the worker's
light writer (``_pg_writer``) uses it as well.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._rows import INSERT_COLUMNS, REPLACE_WHEN, STEP_STAT_TABLE, money_value, utc_value

__all__ = ["PG_BINDS", "PgInsert", "usage_insert"]

Row = dict[str, Any]

# The columns whose values need converting before psycopg adapts them (the columns of
# type UTCDateTime and Money; tests/ledger checks the list against _schema.StepStat).
PG_BINDS: Mapping[str, Callable[[Any], Any]] = {
    "requested_at": utc_value,
    "recorded_at": utc_value,
    "cost_usd": money_value,
}


class PgInsert:
    """``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING key`` for any number of rows;
    with ``replace_when``, ``DO UPDATE SET <every column> WHERE <replace_when>`` instead
    (RETURNING then names the rows inserted or replaced). Names are plain lower-case
    identifiers (the ledger's), written unquoted.

    Example::

        insert = usage_insert()
        cursor = psycopg.AsyncRawCursor(psycopg_conn)
        await cursor.execute(insert.sql(len(rows)), insert.params(rows))
        new_keys = {r[0] for r in await cursor.fetchall()}
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        *,
        key: str,
        replace_when: str | None = None,
        binds: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        binds = binds or {}
        # Only the ledger's own conversions; the rest psycopg adapts natively.
        self._columns: tuple[tuple[str, Callable[[Any], Any] | None], ...] = tuple(
            (name, binds.get(name)) for name in columns
        )
        names = ", ".join(columns)
        self._head = f"INSERT INTO {table} ({names}) VALUES "
        if replace_when is None:
            self._tail = f" ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
        else:
            assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
            self._tail = (
                f" ON CONFLICT ({key}) DO UPDATE SET {assignments} WHERE {replace_when}"
                f" RETURNING {key}"
            )
        self._width = len(columns)
        self._texts: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        """The statement for ``rows`` rows, with ``$n`` placeholders for a raw cursor
        (built once per row count)."""
        text = self._texts.get(rows)
        if text is None:
            width = self._width
            values = ", ".join(
                "(" + ", ".join(f"${first + i}" for i in range(width)) + ")"
                for first in range(1, rows * width + 1, width)
            )
            text = self._head + values + self._tail
            if len(self._texts) < 64:
                self._texts[rows] = text
        return text

    def params(self, rows: Sequence[Row]) -> list[Any]:
        """The rows' values, flat and bind-processed, in the statement's order."""
        flat: list[Any] = []
        for row in rows:
            for name, process in self._columns:
                value = row.get(name)
                flat.append(value if process is None else process(value))
        return flat


def usage_insert() -> PgInsert:
    """The upsert of usage rows and intents into ``workflow_step_stats`` (see
    ``_rows.REPLACE_WHEN`` for what may replace what)."""
    return PgInsert(
        STEP_STAT_TABLE, INSERT_COLUMNS, key="call_key", replace_when=REPLACE_WHEN, binds=PG_BINDS
    )
