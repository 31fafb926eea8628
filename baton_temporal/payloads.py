"""Big data is normal data: payloads over a threshold are kept outside Temporal history.

A step may return a multi-megabyte document and several steps may read it. Temporal
refuses a payload over 2 MB and a workflow-task completion over 4 MB, so every worker
and client of baton stores each payload of ``BATON_PAYLOAD_THRESHOLD`` bytes or more
(default 256 KiB) in a **payload store** and leaves a small claim in history. This is
temporalio's own external storage (``temporalio.converter.ExternalStorage``) with one of
two drivers:

* :class:`DatabasePayloadDriver`: a table ``baton_payloads`` in a SQL database
  (PostgreSQL in production, usually the ledger's database; SQLite works too).
* :class:`FilePayloadDriver`: a directory shared by every worker and client.

``BATON_PAYLOAD_STORE`` chooses (or ``BatonPlugin(payload_store=...)``):

=====================================  ==================================================
unset                                  the ledger's database if ``BATON_LEDGER_URL`` is
                                       set, else the directory ``./.baton/payloads``
``ledger``                             the ledger's database (``BATON_LEDGER_URL`` or the
                                       default SQLite file)
``postgresql://...``, ``sqlite:///...``  that database
``file:///path`` or a path             that directory
``off``                                none: a payload over 2 MB fails its step or run
=====================================  ==================================================

Payloads are stored after the payload codec ran (temporalio's order): with encryption on
(``baton_temporal.codec``), the store holds only ciphertext, and the claim in history
holds only the key (the SHA-256 of that ciphertext) and the size. Stored payloads are
content-addressed and immutable, so a retried write is harmless.

Lifetime: a stored payload lives until it is pruned by age, with the ledger
(``baton db prune --older-than 30d`` prunes usage rows and payloads alike). Choose an age
longer than your longest flow plus the namespace's retention: a run that reads a pruned
payload fails with ``PayloadMissing`` (it never waits forever), and ``temporal workflow
show`` then shows claims instead of data.

When the store is unreachable a run waits, visibly: its workflow task fails with
"payload store ... unreachable" (``temporal workflow describe`` shows it) and Temporal
retries it with backoff; a step whose input cannot be read is retried under its retry
policy. Example::

    client = await Client.connect("localhost:7233", plugins=[baton.BatonPlugin()])
    # or, for a client you already have:
    client = baton.payloads.with_payload_store(client)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from .workflow._window import MAX_INLINE_PAYLOAD

if TYPE_CHECKING:
    from temporalio.client import Client

__all__ = [
    "DEFAULT_DIRECTORY",
    "DEFAULT_THRESHOLD",
    "PAYLOAD_MISSING_ERROR",
    "STORE_ENV",
    "THRESHOLD_ENV",
    "DatabasePayloadDriver",
    "FilePayloadDriver",
    "PayloadStoreConfigError",
    "PayloadStoreUnavailable",
    "external_storage",
    "prune_payloads",
    "with_payload_store",
]

STORE_ENV = "BATON_PAYLOAD_STORE"
THRESHOLD_ENV = "BATON_PAYLOAD_THRESHOLD"
DEFAULT_THRESHOLD = MAX_INLINE_PAYLOAD
MIN_THRESHOLD = 1024
DEFAULT_DIRECTORY = Path(".baton") / "payloads"
PAYLOAD_MISSING_ERROR = "PayloadMissing"
_OFF = ("off", "none", "false", "0", "no")
_TABLE = "baton_payloads"


class PayloadStoreConfigError(ValueError):
    """``BATON_PAYLOAD_STORE`` / ``BATON_PAYLOAD_THRESHOLD`` (or the arguments) are wrong."""


class PayloadStoreUnavailable(RuntimeError):
    """The payload store cannot be reached now; Temporal retries the task that needed it."""


def _missing(key: str, where: str) -> ApplicationError:
    # Non-retryable: raised while a workflow task decodes its history, it fails the run
    # with this message instead of failing the workflow task forever.
    return ApplicationError(
        f"payload {key} is not in the payload store {where}: it was pruned (`baton db "
        f"prune`), or this process uses another {STORE_ENV} than the one that stored it; "
        "every worker and client must share one store (a PostgreSQL URL or a shared "
        "directory), and payloads must be kept longer than the flows that read them",
        type=PAYLOAD_MISSING_ERROR,
        non_retryable=True,
    )


def _corrupt(key: str, where: str) -> ApplicationError:
    return ApplicationError(
        f"payload {key} in the payload store {where} does not match its claim (changed or "
        "truncated after it was stored); restore it from a backup",
        type=PAYLOAD_MISSING_ERROR,
        non_retryable=True,
    )


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _claim(key: str, size: int) -> StorageDriverClaim:
    return StorageDriverClaim(claim_data={"key": key, "size": str(size)})


class FilePayloadDriver(StorageDriver):
    """Stores payloads as files ``<directory>/<ab>/<sha256>`` (atomic writes).

    Example::

        storage = ExternalStorage(drivers=[FilePayloadDriver("/mnt/shared/baton")])
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def name(self) -> str:
        return "baton-file"

    def type(self) -> str:
        return "baton.FilePayloadDriver"

    def __repr__(self) -> str:
        return f"FilePayloadDriver({str(self.directory)!r})"

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / key

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        return await asyncio.to_thread(self._store_sync, [p.SerializeToString() for p in payloads])

    def _store_sync(self, blobs: list[bytes]) -> list[StorageDriverClaim]:
        claims = []
        for data in blobs:
            key = _key(data)
            path = self._path(key)
            try:
                if path.exists():
                    os.utime(path)  # stored again: it lives as long as its newest use
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.{time.monotonic_ns()}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
            except OSError as err:
                raise PayloadStoreUnavailable(
                    f"payload store {self.directory} cannot be written ({err}); fix the "
                    f"directory or its permissions, or set {STORE_ENV}"
                ) from err
            claims.append(_claim(key, len(data)))
        return claims

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        return await asyncio.to_thread(self._retrieve_sync, [c.claim_data["key"] for c in claims])

    def _retrieve_sync(self, keys: list[str]) -> list[Payload]:
        out = []
        for key in keys:
            try:
                data = self._path(key).read_bytes()
            except FileNotFoundError:
                if not self.directory.is_dir():
                    raise PayloadStoreUnavailable(
                        f"payload store {self.directory} does not exist (not mounted?); "
                        f"mount it or set {STORE_ENV}"
                    ) from None
                raise _missing(key, str(self.directory)) from None
            except OSError as err:
                raise PayloadStoreUnavailable(
                    f"payload store {self.directory} cannot be read ({err})"
                ) from err
            if _key(data) != key:
                raise _corrupt(key, str(self.directory))
            out.append(Payload.FromString(data))
        return out

    def prune(self, older_than_seconds: float) -> int:
        """Delete payloads last stored more than ``older_than_seconds`` ago; return how many."""
        cutoff = time.time() - older_than_seconds
        deleted = 0
        if not self.directory.is_dir():
            return 0
        for path in self.directory.glob("*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
        return deleted


class DatabasePayloadDriver(StorageDriver):
    """Stores payloads in the table ``baton_payloads`` of a SQL database.

    The table (key, size, stored_at, data) is created on first use, by whichever worker
    or client gets there first; it is not part of the ledger's migrations so that a
    process that only starts flows needs no ``baton db upgrade``.

    Example::

        storage = ExternalStorage(drivers=[DatabasePayloadDriver("postgresql://db/baton")])
    """

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._engine: Any = None
        self._table: Any = None
        self._ready = False

    def name(self) -> str:
        return "baton-db"

    def type(self) -> str:
        return "baton.DatabasePayloadDriver"

    def __repr__(self) -> str:
        from .ledger._store import safe_url

        return f"DatabasePayloadDriver({safe_url(self.url)!r})"

    def _setup(self) -> None:
        if self._engine is not None:
            return
        from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        from .ledger._store import to_async_url

        url = to_async_url(self.url)
        args: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            args["timeout"] = self._connect_timeout
            if url.database:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            args["connect_timeout"] = max(1, int(self._connect_timeout))
        # NullPool: payload traffic is rare and bursty, and a pool would tie connections
        # to the event loop of its first use (clients are used from many loops in tests).
        self._engine = create_async_engine(url, poolclass=NullPool, connect_args=args)
        self._table = Table(
            _TABLE,
            MetaData(),
            Column("key", String(64), primary_key=True),
            Column("size", BigInteger, nullable=False),
            Column("stored_at", BigInteger, nullable=False, index=True),
            Column("data", LargeBinary, nullable=False),
        )

    def _where(self) -> str:
        from .ledger._store import safe_url

        return safe_url(self.url)

    def _unavailable(self, err: BaseException) -> PayloadStoreUnavailable:
        return PayloadStoreUnavailable(
            f"payload store {self._where()} unreachable ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); Temporal retries until it is back"
        )

    async def _ensure_table(self) -> None:
        if self._ready:
            return
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        # In a transaction of its own: on PostgreSQL a failed CREATE aborts its transaction.
        # It fails when another process created the table at the same moment (catalog race).
        with contextlib.suppress(IntegrityError, ProgrammingError):
            async with self._engine.begin() as conn:
                await conn.run_sync(self._table.metadata.create_all, checkfirst=True)
        self._ready = True

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        self._setup()
        from sqlalchemy.exc import SQLAlchemyError

        rows, claims = [], []
        now = int(time.time())
        for p in payloads:
            data = p.SerializeToString()
            key = _key(data)
            rows.append({"key": key, "size": len(data), "stored_at": now, "data": data})
            claims.append(_claim(key, len(data)))
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(self._table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"stored_at": stmt.excluded.stored_at}
        )
        try:
            await self._ensure_table()
            async with self._engine.begin() as conn:
                await conn.execute(stmt, rows)
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            raise self._unavailable(err) from err
        return claims

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        self._setup()
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        keys = [c.claim_data["key"] for c in claims]
        t = self._table
        try:
            await self._ensure_table()
            async with self._engine.connect() as conn:
                rows = await conn.execute(select(t.c.key, t.c.data).where(t.c.key.in_(set(keys))))
                found = {key: data for key, data in rows}
                await conn.commit()
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            raise self._unavailable(err) from err
        out = []
        for key in keys:
            data = found.get(key)
            if data is None:
                raise _missing(key, self._where())
            if _key(bytes(data)) != key:
                raise _corrupt(key, self._where())
            out.append(Payload.FromString(bytes(data)))
        return out

    async def prune(self, older_than_seconds: float) -> int:
        """Delete payloads last stored more than ``older_than_seconds`` ago; return how many."""
        self._setup()
        from sqlalchemy import delete

        cutoff = int(time.time() - older_than_seconds)
        await self._ensure_table()
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(self._table).where(self._table.c.stored_at < cutoff))
        return int(result.rowcount or 0)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


def _driver_for(spec: str, environ: Mapping[str, str]) -> StorageDriver | None:
    text = spec.strip()
    if text.lower() in _OFF:
        return None
    if text.lower() == "ledger":
        from .ledger._store import default_ledger_url

        return DatabasePayloadDriver(default_ledger_url(environ))
    if text.startswith("file:"):
        path = text.removeprefix("file:")
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise PayloadStoreConfigError(
                f"{STORE_ENV}={spec!r} names no directory; write file:///abs/dir or a path"
            )
        return FilePayloadDriver(path)
    if "://" in text:
        scheme = text.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("postgresql", "postgres", "sqlite"):
            raise PayloadStoreConfigError(
                f"{STORE_ENV}: unsupported store {scheme!r}; use a postgresql:// or "
                "sqlite:/// URL, file:///dir, a directory path, 'ledger' or 'off'"
            )
        return DatabasePayloadDriver(text)
    if not text:
        raise PayloadStoreConfigError(f"{STORE_ENV} is empty; unset it for the default")
    return FilePayloadDriver(text)


def default_driver(environ: Mapping[str, str] | None = None) -> StorageDriver | None:
    """The store that ``BATON_PAYLOAD_STORE`` names (see the module docstring)."""
    env = os.environ if environ is None else environ
    spec = env.get(STORE_ENV)
    if spec is not None:
        return _driver_for(spec, env)
    if env.get("BATON_LEDGER_URL"):
        return DatabasePayloadDriver(env["BATON_LEDGER_URL"])
    return FilePayloadDriver(DEFAULT_DIRECTORY)


def threshold_from_env(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    text = env.get(THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        raise PayloadStoreConfigError(
            f"{THRESHOLD_ENV}={text!r} is not a whole number of bytes; e.g. 262144"
        ) from None
    return _check_threshold(value)


def _check_threshold(value: int) -> int:
    if not MIN_THRESHOLD <= value <= MAX_INLINE_PAYLOAD:
        raise PayloadStoreConfigError(
            f"payload threshold {value} is out of range: use {MIN_THRESHOLD} to "
            f"{MAX_INLINE_PAYLOAD} bytes (the flow workflow budgets each workflow task "
            f"assuming no payload over {MAX_INLINE_PAYLOAD} bytes stays in history)"
        )
    return value


def external_storage(
    store: StorageDriver | str | bool | None = None,
    *,
    threshold: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExternalStorage | None:
    """The ``ExternalStorage`` baton uses, or None when the store is ``off``.

    ``store``: a driver, a store spec as in ``BATON_PAYLOAD_STORE``, ``False`` for none,
    or None for the environment's. ``threshold``: bytes (default ``BATON_PAYLOAD_THRESHOLD``
    or 256 KiB; at most 256 KiB).

    Example::

        storage = external_storage("postgresql://db/baton", threshold=128 * 1024)
    """
    env = os.environ if environ is None else environ
    if store is False:
        return None
    if store is None or store is True:
        driver = default_driver(env)
    elif isinstance(store, StorageDriver):
        driver = store
    elif isinstance(store, str):
        driver = _driver_for(store, env)
    else:
        raise PayloadStoreConfigError(
            f"payload_store must be a StorageDriver, a store spec string or False, got "
            f"{type(store).__name__}"
        )
    limit = threshold_from_env(env) if threshold is None else _check_threshold(threshold)
    if driver is None:
        return None
    return ExternalStorage(drivers=[driver], payload_size_threshold=limit)


class PayloadStoreInterceptor(Interceptor):
    """Tells baton's steps that this worker has a payload store (no 2 MB result check)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StoreOnInbound(next)


class _StoreOnInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        from .steps._step import PAYLOAD_STORE_ON

        token = PAYLOAD_STORE_ON.set(True)
        try:
            return await self.next.execute_activity(input)
        finally:
            PAYLOAD_STORE_ON.reset(token)


def with_storage(converter: DataConverter, storage: ExternalStorage | None) -> DataConverter:
    """``converter`` with ``storage``, unless it already has a store (that one wins)."""
    if storage is None or converter.external_storage is not None:
        return converter
    return dataclasses.replace(converter, external_storage=storage)


def with_payload_store(client: Client, storage: ExternalStorage | None = None) -> Client:
    """``client``, or a client on the same connection that uses baton's payload store.

    ``Flow.start`` and the ``baton`` CLI call it, so a flow's big results are readable
    from a client that was connected without ``BatonPlugin``.

    Example::

        result = await baton.payloads.with_payload_store(client).get_workflow_handle(
            "brief-1").result()
    """
    from temporalio.client import Client

    if client.data_converter.external_storage is not None:
        return client
    storage = storage if storage is not None else env_storage()
    if storage is None:
        return client
    config = client.config(active_config=True)
    config["data_converter"] = with_storage(config["data_converter"], storage)
    config["plugins"] = []  # already applied to the config copied here
    return Client(**config)


_ENV_STORAGE: dict[tuple[str | None, str | None, str | None], ExternalStorage | None] = {}


def env_storage() -> ExternalStorage | None:
    # One driver per configuration: drivers may hold a database engine.
    key = (
        os.environ.get(STORE_ENV),
        os.environ.get(THRESHOLD_ENV),
        os.environ.get("BATON_LEDGER_URL"),
    )
    if key not in _ENV_STORAGE:
        _ENV_STORAGE[key] = external_storage()
    return _ENV_STORAGE[key]


async def prune_payloads(
    older_than_seconds: float, store: StorageDriver | str | None = None
) -> int:
    """Delete stored payloads older than the given age from the configured store.

    Example::

        await prune_payloads(30 * 86400)
    """
    storage = external_storage(store if store is not None else None)
    if storage is None:
        return 0
    driver = storage.drivers[0]
    if isinstance(driver, FilePayloadDriver):
        return await asyncio.to_thread(driver.prune, older_than_seconds)
    if isinstance(driver, DatabasePayloadDriver):
        try:
            return await driver.prune(older_than_seconds)
        finally:
            await driver.close()
    return 0
