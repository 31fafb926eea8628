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
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from ._errors import LEDGER_URL_ENV, LedgerConfigError

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "LEDGER_URL_ENV",
    "default_ledger_url",
    "hide_userinfo",
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
# The password runs to the last "@" of the line: it may hold spaces, "/" or "@" itself
# (hiding too much beats showing part of it).
_USERINFO = re.compile(r"(://[^/:@\s]*:).*@")
# Query keys whose values are secrets (libpq's password, sslpassword, ...).
_SECRET_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def hide_userinfo(shown: str) -> str:
    """A rendered URL with anything up to the last "@" hidden after ``user:``: a password
    holding "@" unescaped is read as ending at the first one, and the rest of it would be
    shown as part of the host."""
    return _USERINFO.sub(r"\1***@", shown)


def mask_secrets(text: str) -> str:
    """``text`` with passwords in URL user info, query strings and libpq settings hidden.

    Example::

        mask_secrets("host=db password=hunter2")   # 'host=db password=***'
    """
    return _USERINFO.sub(r"\1***@", _SECRET_IN_TEXT.sub(r"\1***", text))


# The URL schemes the store maps to psycopg (see _config.to_async_url).
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
# The URL grammar the store reads (SQLAlchemy's): the password runs up to the last "@"
# before the host, so it may hold "/", "?", "%" or spaces unescaped; user, password and
# database are percent-decoded, the query is form-decoded.
_PG_URL = re.compile(
    r"(?P<scheme>[\w+]+)://"
    r"(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?"
    r"(?:/(?P<database>[^?]*))?"
    r"(?:\?(?P<query>.*))?"
)
_HOST_PORT = re.compile(r"([A-Za-z0-9.-]*)(?::(\d*))?\Z")


def is_postgres_url(url: object) -> bool:
    """Whether ``url`` is a PostgreSQL URL the store would open with psycopg."""
    return isinstance(url, str) and url.strip().split("://", 1)[0] in _PG_SCHEMES and ("://" in url)


def _invalid(text: str, why: str) -> LedgerConfigError:
    return LedgerConfigError(
        f"invalid ledger URL {mask_secrets(text)!r}{why}; expected e.g. "
        "postgresql://user:pass@host:5432/db or sqlite:///path/to/ledger.sqlite3"
    )


def _bad_port(text: str) -> LedgerConfigError:
    return LedgerConfigError(
        f"invalid ledger URL {mask_secrets(text)!r}: the port must be a number, e.g. "
        "postgresql://user:pass@host:5432/db"
    )


def _query_hosts(text: str, query: dict[str, list[str]]) -> dict[str, str]:
    """The ``host``/``port`` settings of the query as the store hands them to psycopg:
    ``host=h1:p1&host=h2:p2`` or ``host=h1,h2&port=p1,p2``."""
    hosts, ports = query.get("host"), query.get("port")
    if hosts is None:
        return {} if ports is None else {"port": ",".join(ports)}
    pairs: list[tuple[str, str]] = []
    if len(hosts) > 1:
        pairs = [(h.split(":")[0], h.split(":")[1] if ":" in h else "") for h in hosts]
    elif ports is None and ":" in hosts[0] and "," not in hosts[0]:
        match = _HOST_PORT.match(hosts[0])
        if match:
            pairs = [(match[1], match[2] or "")]
    if not pairs:
        return {"host": ",".join(hosts), **({"port": ",".join(ports)} if ports else {})}
    if ports is not None:
        raise _invalid(text, " (mixes host=h:p with port=p)")
    if not all(p.isdigit() or not p for _, p in pairs):
        raise _bad_port(text)
    shown = {"host": ",".join(h for h, _ in pairs)}
    if any(p for _, p in pairs):
        shown["port"] = ",".join(p for _, p in pairs)
    return shown


def _render(parts: dict[str, Any], query: dict[str, list[str]]) -> str:
    """The URL as the store shows it (SQLAlchemy's rendering, password hidden)."""
    shown = "postgresql+psycopg://"
    if parts["user"] is not None:
        shown += quote(unquote(parts["user"]), safe=" +")
        if parts["password"] is not None:
            shown += ":***"
        shown += "@"
    host = parts["ipv6"] or parts["host"]
    if host is not None:
        shown += f"[{host}]" if ":" in host else host
    if parts["port"]:
        shown += f":{int(parts['port'])}"
    if parts["database"] is not None:
        shown += "/" + quote(unquote(parts["database"]), safe=" +/")
    if query:
        shown += "?" + "&".join(
            f"{quote_plus(k)}={quote_plus('***' if _SECRET_KEY.search(k) else v)}"
            for k in sorted(query)
            for v in query[k]
        )
    return shown if parts["password"] is None else hide_userinfo(shown)


def postgres_target(url: str) -> tuple[str, str]:
    """``(conninfo, shown)`` of a PostgreSQL ledger URL: the libpq settings psycopg
    connects with (those the store passes it), and the URL as messages show it
    (password hidden, as the store shows it).

    Raises :class:`LedgerConfigError` for a URL that is not one (e.g. a port that is
    not a number), as ``LedgerStore.from_url`` would.
    """
    text = url.strip()
    match = _PG_URL.match(text)
    if match is None or match["scheme"] not in _PG_SCHEMES:
        raise _invalid(text, "")
    if match["port"] is not None and not match["port"].isdigit():
        raise _bad_port(text)
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(match["query"] or ""):
        query.setdefault(key, []).append(value)
    settings: dict[str, Any] = {
        "host": match["ipv6"] or match["host"],
        "port": match["port"],
        "user": unquote(match["user"]) if match["user"] else None,
        "password": unquote(match["password"]) if match["password"] else None,
        "dbname": unquote(match["database"]) if match["database"] else None,
    }
    settings = {k: v for k, v in settings.items() if v}
    for key, values in query.items():
        if key in ("host", "port"):
            continue
        if len(values) > 1:
            raise _invalid(text, f" ({key!r} is given more than once)")
        settings[key] = values[0]
    settings.update(_query_hosts(text, query))
    # libpq checks every setting's name (and some values); a URL it refuses is refused
    # now, not at the first write.
    from psycopg.conninfo import make_conninfo

    try:
        conninfo = make_conninfo("", **settings)
    except Exception as err:
        raise _invalid(text, f" ({mask_secrets(' '.join(str(err).split()))})") from None
    return conninfo, _render(match.groupdict(), query)
