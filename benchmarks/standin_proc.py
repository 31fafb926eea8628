"""The provider stand-in in a process of its own: ``python -m benchmarks.standin_proc``.

A real provider is another machine; here it is at least another process, so its work
does not compete with the worker's event loop (or the GIL). Prints one JSON line with
its environment (``ANTHROPIC_BASE_URL``...), then obeys stdin commands, one a line:
``latency <seconds>``, ``reset``, ``count`` (billed calls since the last reset),
``connections`` (TCP connections accepted since start).
"""

from __future__ import annotations

import json
import sys

from baton_temporal.testing import StandIn


def main() -> None:
    with StandIn() as standin:
        print(json.dumps({"env": standin.env()}), flush=True)
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "latency":
                standin.set_latency(float(parts[1]))
                print(json.dumps({"ok": True}), flush=True)
            elif parts[0] == "reset":
                standin.reset()
                print(json.dumps({"ok": True}), flush=True)
            elif parts[0] == "count":
                print(json.dumps({"billed": standin.billed_calls()}), flush=True)
            elif parts[0] == "connections":
                print(json.dumps({"connections": standin.connections_opened}), flush=True)
            elif parts[0] == "quit":
                break


if __name__ == "__main__":
    main()
