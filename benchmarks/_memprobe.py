"""Memory probes a benchmark worker answers on stdin (see :mod:`benchmarks.rss_breakdown`).

``mem``: RSS, /proc/self/smaps_rollup, modules loaded, objects tracked by gc.
``modules``: the names in ``sys.modules``. ``mark``: remembers the module list, a
tracemalloc snapshot (when tracing) and gc counts by type; ``diff``: what grew since
the mark, by package (tracemalloc), by type (gc), and the modules imported since.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections import Counter
from typing import Any

_mark: dict[str, Any] = {}


def smaps() -> dict[str, int]:
    """/proc/self/smaps_rollup, KiB."""
    out: dict[str, int] = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0])
    return out


def _package(filename: str) -> str:
    """A short label for a source file: the top package under site-packages, else the
    path's last parts (baton_temporal/ledger, benchmarks...)."""
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            rest = filename.split(marker, 1)[1]
            if marker.startswith("/lib"):
                rest = rest.split("/", 1)[1] if "/" in rest else rest
                return "stdlib:" + rest.split("/")[0].removesuffix(".py")
            return rest.split("/")[0].removesuffix(".py")
    parts = filename.split("/")
    for i, part in enumerate(parts):
        if part in ("baton_temporal", "benchmarks"):
            return "/".join(parts[i : i + 2]).removesuffix(".py")
    return filename if filename.startswith("<") else "other"


def _types() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def mem() -> dict[str, Any]:
    s = smaps()
    return {
        "rss_kib": s.get("Rss", 0),
        "anon_kib": s.get("Anonymous", 0),
        "file_kib": s.get("Rss", 0) - s.get("Anonymous", 0),
        "private_dirty_kib": s.get("Private_Dirty", 0),
        "modules": len(sys.modules),
        "gc_objects": len(gc.get_objects()),
        "traced_kib": tracemalloc.get_traced_memory()[0] // 1024
        if tracemalloc.is_tracing()
        else None,
    }


def mark() -> dict[str, Any]:
    gc.collect()
    _mark["modules"] = set(sys.modules)
    _mark["types"] = _types()
    _mark["snapshot"] = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    return {"marked": True}


def diff(top: int = 30) -> dict[str, Any]:
    """Growth since the last mark."""
    out: dict[str, Any] = {}
    new_modules = sorted(set(sys.modules) - _mark.get("modules", set()))
    out["new_modules"] = len(new_modules)
    out["new_module_roots"] = Counter(m.split(".")[0] for m in new_modules).most_common(top)
    types = _types()
    grown = types - _mark.get("types", Counter())
    out["types_grown"] = grown.most_common(top)
    before = _mark.get("snapshot")
    if before is not None:
        out.update(_group(tracemalloc.take_snapshot().compare_to(before, "traceback"), top))
    return out


def total(top: int = 40) -> dict[str, Any]:
    """Everything traced now (since the interpreter started), by package and line."""
    if not tracemalloc.is_tracing():
        return {"tracing": False}
    gc.collect()
    return _group(tracemalloc.take_snapshot().statistics("traceback"), top)


def _group(stats: list[Any], top: int) -> dict[str, Any]:
    by_pkg: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    for stat in stats:
        # Frames run oldest to newest: charge each block to the newest frame outside
        # the standard library (who asked for it), e.g. sqlalchemy, not dataclasses.
        frames = list(stat.traceback)
        owner = frames[-1]
        for frame in reversed(frames):
            if not _package(frame.filename).startswith(("stdlib:", "<")):
                owner = frame
                break
        size = getattr(stat, "size_diff", stat.size)
        by_pkg[_package(owner.filename)] += size
        where = owner.filename.split("site-packages/")[-1].split("/wt-rss/")[-1]
        by_line[f"{where}:{owner.lineno}"] += size
    return {
        "by_package_kib": [(k, v // 1024) for k, v in by_pkg.most_common(top)],
        "by_line_kib": [(k, v // 1024) for k, v in by_line.most_common(top)],
    }


def answer(command: str) -> dict[str, Any] | None:
    """The reply to a probe command, or None if it is not one."""
    if command == "mem":
        return mem()
    if command == "modules":
        return {"modules": sorted(sys.modules)}
    if command == "mark":
        return mark()
    if command == "diff":
        return diff()
    if command == "total":
        return total()
    return None
