"""A throwaway PostgreSQL server for tests and CI, from the machine's own binaries.

``initdb`` into a fresh temporary directory, ``postgres`` on a free loopback port with
trust authentication and no Unix socket, durability switched off (fast, and nothing in
it is worth keeping). ``stop()`` and ``start()`` again reuse the same data directory and
port, which is how tests simulate a database outage. Nothing is downloaded.

PostgreSQL refuses to run as root. When this process is root, ``initdb`` and
``postgres`` run as an unprivileged account instead (``$BATON_PG_OS_USER``, else
``postgres``, else ``nobody``) through ``subprocess``'s ``user=``/``group=`` (no
``sudo``/``runuser`` needed), and the temporary directory is handed to that account.

Binaries are looked up in ``$BATON_PG_BIN``, then ``pg_config --bindir``, then the
newest ``/usr/lib/postgresql/*/bin`` (Debian/Ubuntu), then ``$PATH``.

Example::

    with start_postgres() as pg:
        url = pg.url                  # postgresql://baton@127.0.0.1:54321/baton
        pg.stop()                     # outage
        pg.start()                    # back, same URL, same data

From a shell (CI)::

    python -m baton_temporal.testing.postgres     # prints the URL, runs until Ctrl-C
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "PostgresError",
    "PostgresNotFound",
    "PostgresServer",
    "find_postgres_bin",
    "start_postgres",
]

BIN_ENV = "BATON_PG_BIN"
OS_USER_ENV = "BATON_PG_OS_USER"

# Throwaway data: no fsync (only an OS crash could lose data, and then nobody cares).
# synchronous_commit stays on: with it off, a commit reported to the client can be lost
# when the server process is killed, and tests that crash the server would see rows
# vanish that a real server keeps. Small buffers so several servers fit on a CI box.
_FAST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "100",
}


class PostgresError(RuntimeError):
    """The throwaway server could not be set up, started or stopped."""


class PostgresNotFound(PostgresError):
    """No PostgreSQL server binaries (initdb, postgres) on this machine."""


def _has_server_binaries(bin_dir: Path) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file()


def find_postgres_bin(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``initdb`` and ``postgres``; :class:`PostgresNotFound` if none."""
    tried: list[str] = []
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
                ).stdout.strip()
                if out:
                    candidates.append(Path(out))

        def version(p: Path) -> float:
            try:
                return float(p.parent.name)
            except ValueError:
                return 0.0

        candidates.extend(
            sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        )
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for candidate in candidates:
        tried.append(str(candidate))
        if _has_server_binaries(candidate):
            return candidate
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, postgres) not found; looked in "
        f"{', '.join(tried) or 'nothing'}. Install them (Debian/Ubuntu: "
        f"`apt-get install postgresql`) or set {BIN_ENV} to their directory."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _os_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    wanted = [os.environ[OS_USER_ENV]] if os.environ.get(OS_USER_ENV) else ["postgres", "nobody"]
    for name in wanted:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError(
        f"running as root, and none of the accounts {wanted} exists to run PostgreSQL as "
        f"(it refuses root); create one or set {OS_USER_ENV}"
    )


def _base_dir_for_others() -> str:
    """A temp dir the unprivileged account can reach: $TMPDIR may sit under /root."""
    tmp = Path(tempfile.gettempdir()).resolve()
    # Every ancestor must be searchable (o+x) by an account that is neither owner nor group.
    if all(os.stat(p).st_mode & 0o001 for p in (tmp, *tmp.parents)):
        return str(tmp)
    return "/tmp"


class PostgresServer:
    """One throwaway PostgreSQL server. :meth:`start` it, use :attr:`url`, :meth:`close`.

    ``database`` is created on first start; :meth:`create_database` makes more (one
    per test, for isolation). ``url`` is a plain ``postgresql://`` URL without a
    password (trust auth on loopback only).
    """

    def __init__(
        self,
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        user: str = "baton",
        database: str = "baton",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bin_dir = find_postgres_bin(bin_dir)
        self._account = _os_account()
        if base_dir is None and self._account is not None:
            base_dir = _base_dir_for_others()
        self.root = Path(tempfile.mkdtemp(prefix="baton-pg-", dir=base_dir))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._fixed_port = port is not None
        self.port = port if port is not None else _free_port()
        self.user = user
        self.database = database
        self.settings = {**_FAST_SETTINGS, **(settings or {})}
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialised = False
        if self._account is not None:
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
        atexit.register(self._atexit)

    # -- process plumbing ---------------------------------------------------------------

    def _subprocess_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"env": env, "cwd": str(self.root)}
        if self._account is not None:
            env["HOME"] = str(self.root)
            env["USER"] = env["LOGNAME"] = self._account.pw_name
            # Drop root's supplementary groups too, not only uid/gid.
            kwargs.update(user=self._account.pw_uid, group=self._account.pw_gid, extra_groups=[])
        return kwargs

    def _initdb(self) -> None:
        cmd = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, **self._subprocess_kwargs())
        if done.returncode != 0:
            raise PostgresError(
                f"initdb failed (exit {done.returncode}) in {self.data_dir}:\n"
                f"{done.stdout}\n{done.stderr}".rstrip()
            )
        self._initialised = True

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            "",  # no Unix socket: nothing to clash with a system server's socket dir
        ]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C meant for the test runner does not hit the server
                # mid-test; the runner's teardown stops it.
                start_new_session=True,
                **self._subprocess_kwargs(),
            )

    def _connect(self, dbname: str = "postgres", timeout: float = 2.0) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=dbname,
            connect_timeout=max(1, int(timeout)),
            sslmode="disable",
            autocommit=True,
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise PostgresError(
                    f"postgres exited with code {proc.returncode} while starting on port "
                    f"{self.port}; log {self.log_path}:\n{self._log_tail()}"
                )
            try:
                with self._connect():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self._kill(proc)
                    raise PostgresError(
                        f"postgres did not accept connections on port {self.port} within "
                        f"{timeout:.0f}s; log {self.log_path}:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # -- public API -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``postgresql://USER@127.0.0.1:PORT/DATABASE``."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The URL of another database on this server."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (``initdb`` first, the first time); return :attr:`url`.

        Blocks until it accepts connections. Starting again after :meth:`stop` keeps
        the data and the port.
        """
        if self.running:
            return self.url
        first = not self._initialised
        if first:
            self._initdb()
        for tries_left in range(2, -1, -1):
            proc = self._spawn()
            try:
                self._wait_ready(proc, timeout)
                break
            except PostgresError:
                # Another process took the free port between our probe and the bind.
                in_use = "could not bind" in self._log_tail() or "in use" in self._log_tail()
                if not (first and not self._fixed_port and in_use and tries_left):
                    raise
                self.port = _free_port()
        self._proc = proc
        if first:
            self.create_database(self.database)
        return self.url

    def stop(self, timeout: float = 30.0, *, mode: str = "fast") -> None:
        """Stop the server, keeping its data: ``mode`` "fast" (clean, SIGINT) or
        "immediate" (like a crash, SIGQUIT: recovery runs at the next start)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
        self._proc = None

    def restart(self) -> str:
        """:meth:`stop` then :meth:`start`: same port, same data."""
        self.stop()
        return self.start()

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing); return its URL."""
        from psycopg import sql

        with self._connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting anyone still on it."""
        from psycopg import sql

        with self._connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self._atexit)

    def _atexit(self) -> None:
        # A test run that dies without teardown must not leave a server behind.
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"PostgresServer({self.url!r}, {state}, data={str(self.data_dir)!r})"


def start_postgres(**kwargs: Any) -> PostgresServer:
    """Create and start a :class:`PostgresServer` (arguments as its constructor's).

    Example::

        pg = start_postgres()
        try:
            run_tests(pg.url)
        finally:
            pg.close()
    """
    server = PostgresServer(**kwargs)
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m baton_temporal.testing.postgres",
        description="Run a throwaway PostgreSQL server until interrupted; print its URL.",
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--bin-dir", default=None, help=f"default: ${BIN_ENV} or auto-detect")
    args = parser.parse_args(argv)
    try:
        server = start_postgres(port=args.port, bin_dir=args.bin_dir)
    except PostgresError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(server.url, flush=True)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stopping and server.running:
            time.sleep(0.2)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
