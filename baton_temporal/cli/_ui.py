"""``baton ui``: serve the cost page until Ctrl-C, and the helper ``baton dev`` and
``baton demo --keep`` use to serve it beside their worker."""

from __future__ import annotations

import contextlib
import ipaddress
import sys
from collections.abc import AsyncIterator
from typing import Any

from ._common import CliError

__all__ = ["cost_page", "run_ui"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.asynccontextmanager
async def cost_page(
    client: Any, store: Any, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Any]:
    """The cost page served on ``host:port`` while the block runs (a UIServer)."""
    from ..ui import UIServer

    server = UIServer(client, store, host=host, port=port)
    try:
        await server.start()
    except OSError as err:
        raise CliError(
            f"cannot serve the cost page on {host}:{port}: {err.strerror or err}; pick another "
            "port with --port (0 picks a free one)"
        ) from None
    try:
        yield server
    finally:
        await server.close()


async def run_ui(args: Any) -> int:
    from ._commands import _open_ledger, connect_temporal
    from ._demo import Stopper, on_stop_signals

    out = sys.stdout
    try:
        store = _open_ledger(args.url, must_exist=True)
    except CliError as err:
        print(f"baton ui: note: {err}; costs show as blank until it exists", file=sys.stderr)
        store = None
    client = await connect_temporal()
    if not _is_loopback(args.host):
        print(
            f"baton ui: warning: serving on {args.host}: anyone who can reach it can read "
            "your flows and what they cost (it has no login); the default is 127.0.0.1",
            file=sys.stderr,
        )
    stopper = Stopper(out)
    try:
        with on_stop_signals(stopper):
            async with cost_page(client, store, host=args.host, port=args.port) as page:
                print(f"baton ui: cost page at {page.url}   (Ctrl-C to stop)", file=out, flush=True)
                await stopper.wait()
    finally:
        if store is not None:
            await store.close()
    print("baton ui: stopped", file=out, flush=True)
    return 0
