"""Ledger URLs and settings, and the ledger's error classes.

Example::

    to_async_url("postgresql://baton@db/baton")   # postgresql+psycopg://baton@db/baton
    safe_url("postgresql://baton:secret@db/baton")  # postgresql://baton:***@db/baton
"""

from __future__ import annotations

import re

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from ._errors import (
    LEDGER_URL_ENV,
    LedgerConfigError,
    LedgerError,
    LedgerNotMigrated,
    LedgerUnavailable,
    LedgerWriteError,
)
from ._urls import DEFAULT_SQLITE_PATH, default_ledger_url, hide_userinfo, mask_secrets

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "LEDGER_URL_ENV",
    "LedgerConfigError",
    "LedgerError",
    "LedgerNotMigrated",
    "LedgerUnavailable",
    "LedgerWriteError",
    "default_ledger_url",
    "mask_secrets",
    "safe_url",
    "to_async_url",
    "to_sync_url",
]


# ----------------------------------------------------------------------------- errors


# -------------------------------------------------------------------------------- URLs


# Query keys whose values are secrets (libpq's password, sslpassword, ...).
_SECRET_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    if not isinstance(url, str):
        raise LedgerConfigError(f"the ledger URL must be a string, got {type(url).__name__}")
    try:
        return make_url(url)
    except sa_exc.ArgumentError:
        hint = (
            "; a libpq 'key=value' string is not accepted: write it as a URL"
            if "=" in url and "://" not in url
            else ""
        )
        raise LedgerConfigError(
            f"invalid ledger URL {mask_secrets(url)!r}{hint}; expected e.g. "
            "postgresql://user:pass@host:5432/db or sqlite:///path/to/ledger.sqlite3"
        ) from None
    except ValueError:
        # SQLAlchemy parses the port with int(): "host:abc" ends here.
        raise LedgerConfigError(
            f"invalid ledger URL {mask_secrets(url)!r}: the port must be a number, e.g. "
            "postgresql://user:pass@host:5432/db"
        ) from None


_PG_NAMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}
_SQLITE_NAMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}


def to_async_url(url: str | URL) -> URL:
    """The URL with the async driver the store uses.

    ``postgresql://`` / ``postgres://`` / ``postgresql+psycopg2://`` become
    ``postgresql+psycopg://``; ``sqlite:///`` becomes ``sqlite+aiosqlite:///``.
    """
    parsed = _parse(url)
    name = parsed.drivername
    if name in _PG_NAMES:
        return parsed.set(drivername="postgresql+psycopg")
    if name == "postgresql+asyncpg":
        return parsed  # works too (ON CONFLICT is dialect-level), if installed
    if name in _SQLITE_NAMES:
        return parsed.set(drivername="sqlite+aiosqlite")
    raise LedgerConfigError(
        f"unsupported ledger database {safe_url(parsed)!r}: the ledger runs on PostgreSQL "
        "(postgresql://user:pass@host/db) or SQLite (sqlite:///path/to/ledger.sqlite3)"
    )


def to_sync_url(url: str | URL) -> URL:
    """The URL with a synchronous driver (for Alembic's own command line)."""
    parsed = to_async_url(url)
    if parsed.drivername.startswith("sqlite"):
        return parsed.set(drivername="sqlite")
    return parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is sync and async


def safe_url(url: str | URL) -> str:
    """The URL as text with the password hidden, for messages and logs."""
    try:
        parsed = _parse(url)
    except LedgerConfigError:
        return "<invalid URL>"
    if any(_SECRET_KEY.search(k) for k in parsed.query):
        parsed = parsed.set(
            query={k: ("***" if _SECRET_KEY.search(k) else v) for k, v in parsed.query.items()}
        )
    shown = parsed.render_as_string(hide_password=True)
    return shown if parsed.password is None else hide_userinfo(shown)
