"""Ledger URL handling that needs no SQLAlchemy: the default URL, hiding secrets, and
reading a PostgreSQL URL for the worker's light writer (``_pg_writer``).

Example::

    default_ledger_url()                          # $BATON_LEDGER_URL, else the SQLite file
    postgres_target("postgresql://u:pw@db/baton")  # ('postgresql://u:pw@db/baton',
                                                  #  'postgresql+psycopg://u:***@db/baton')
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ._errors import LEDGER_URL_ENV, LedgerConfigError

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "LEDGER_URL_ENV",
    "default_ledger_url",
    "is_postgres_url",
    "mask_secrets",
    "postgres_target",
]

DEFAULT_SQLITE_PATH = Path(".baton") / "ledger.sqlite3"


def default_ledger_url(environ: Mapping[str, str] | None = None) -> str:
    """``$BATON_LEDGER_URL``, else the embedded SQLite file ``./.baton/ledger.sqlite3``.

    The relative path is resolved now, against the current directory, so a later
    ``chdir`` does not move the ledger.
    """
    env = os.environ if environ is None else environ
    url = env.get(LEDGER_URL_ENV, "").strip()
    if url:
        return url
    return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


# In text that is not a URL at all (a libpq "key=value" string, a garbled URL): the
# value after a secret-looking key, and the password part of "user:password@".
_SECRET_IN_TEXT = re.compile(
    r"((?:\w*(?:pass|secret|token|key)\w*)\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;]+)",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")


def mask_secrets(text: str) -> str:
    """``text`` with passwords in URL user info, query strings and libpq settings hidden.

    Example::

        mask_secrets("host=db password=hunter2")   # 'host=db password=***'
    """
    return _USERINFO.sub(r"\1***@", _SECRET_IN_TEXT.sub(r"\1***", text))


# The URL schemes the store maps to psycopg (see _config.to_async_url).
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
# scheme://[userinfo@]hosts[/database][?query]; hosts: host[:port][,host[:port]...]
_PG_URL = re.compile(
    r"(?P<scheme>[\w+]+)://(?:(?P<userinfo>[^/?@]*)@)?(?P<hosts>[^/?]*)(?P<rest>[/?].*)?\Z",
    re.DOTALL,
)


def is_postgres_url(url: object) -> bool:
    """Whether ``url`` is a PostgreSQL URL the store would open with psycopg."""
    return isinstance(url, str) and url.strip().split("://", 1)[0] in _PG_SCHEMES and ("://" in url)


def postgres_target(url: str) -> tuple[str, str]:
    """``(conninfo, shown)`` of a PostgreSQL ledger URL: a libpq URI psycopg connects
    with, and the URL as messages show it (password hidden, as the store shows it).

    Raises :class:`LedgerConfigError` for a URL that is not one (e.g. a port that is
    not a number), as ``LedgerStore.from_url`` would.
    """
    text = url.strip()
    match = _PG_URL.match(text)
    if match is None or match["scheme"] not in _PG_SCHEMES:
        raise LedgerConfigError(
            f"invalid ledger URL {mask_secrets(text)!r}; expected e.g. "
            "postgresql://user:pass@host:5432/db or sqlite:///path/to/ledger.sqlite3"
        )
    for host in match["hosts"].split(","):
        port = host.rsplit("]", 1)[-1].rpartition(":")[2] if ":" in host else ""
        if port and not port.isdigit():
            raise LedgerConfigError(
                f"invalid ledger URL {mask_secrets(text)!r}: the port must be a number, e.g. "
                "postgresql://user:pass@host:5432/db"
            )
    tail = text.split("://", 1)[1]
    conninfo = "postgresql://" + tail
    # libpq parses the whole URI (percent-decoding, several hosts, query settings);
    # a URI it refuses is refused now, not at the first write.
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(conninfo)
    except Exception as err:
        detail = mask_secrets(" ".join(str(err).split()))
        raise LedgerConfigError(
            f"invalid ledger URL {mask_secrets(text)!r} ({detail}); expected e.g. "
            "postgresql://user:pass@host:5432/db"
        ) from None
    return conninfo, mask_secrets("postgresql+psycopg://" + tail)
