"""What JSON can hold: the check behind step args (at build time and when a flow is read)
and step results (on the worker, before a result is sent).

The walk is iterative with a depth bound: data nested thousands deep, or a structure that
contains itself, gets a message instead of a RecursionError.
"""

from __future__ import annotations

import math
from typing import Any

from ._limits import MAX_JSON_DEPTH

__all__ = ["find_non_json"]

# Python refuses to turn integers of more than 4,300 digits into text (and so into JSON);
# 14,000 bits is just under that.
_MAX_INT_BITS = 14_000

_Path = tuple[Any, Any] | None  # (parent path, key): built into text only for a message
_EXIT = object()


def _render(path: _Path, root: str) -> str:
    keys: list[Any] = []
    while path is not None:
        path, key = path
        keys.append(key)
    keys.reverse()
    if len(keys) > 8:  # a deep path: its ends say where, the middle only how deep
        return (
            root
            + "".join(f"[{k!r}]" for k in keys[:4])
            + f"[...{len(keys) - 7} more...]"
            + "".join(f"[{k!r}]" for k in keys[-3:])
        )
    return root + "".join(f"[{k!r}]" for k in keys)


def find_non_json(value: Any, path: str = "", *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Describe the first value under ``value`` that JSON cannot hold, with its key path.

    Refused: values other than str, int, float, bool, None, lists, tuples and dicts with
    string keys; NaN and infinities; integers too long to print; text that is not valid
    UTF-8 (lone surrogates); nesting deeper than ``max_depth``; a list or dict that
    contains itself.

    Example::

        find_non_json({"doc": {"when": datetime.now()}}, "args")
        # "args['doc']['when'] is a datetime"
    """
    root = path or "value"
    # Entries: (value, depth, path) to check, or (_EXIT, container id, None) to leave one.
    stack: list[tuple[Any, Any, _Path]] = [(value, 0, None)]
    on_path: set[int] = set()
    while stack:
        item, depth, where = stack.pop()
        if item is _EXIT:
            on_path.discard(depth)
            continue
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if item.bit_length() > _MAX_INT_BITS:
                return f"{_render(where, root)} is an integer too long for JSON (over 4,000 digits)"
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{_render(where, root)} is {item!r}"
            continue
        if isinstance(item, str):
            if not _utf8(item):
                return f"{_render(where, root)} is text with a lone surrogate (not valid UTF-8)"
            continue
        if not isinstance(item, dict | list | tuple):
            return f"{_render(where, root)} is a {type(item).__name__}"
        if id(item) in on_path:
            return f"{_render(where, root)} contains itself (a cycle); JSON cannot hold it"
        if depth >= max_depth:
            return (
                f"{_render(where, root)} nests deeper than {max_depth} levels; flatten the "
                "data (or pass it as a JSON string)"
            )
        on_path.add(id(item))
        stack.append((_EXIT, id(item), None))
        if isinstance(item, dict):
            children: list[tuple[Any, Any, _Path]] = []
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{_render(where, root)} has a non-string key {key!r}"
                if not _utf8(key):
                    return f"{_render(where, root)} has a key with a lone surrogate"
                children.append((child, depth + 1, (where, key)))
        else:
            children = [(child, depth + 1, (where, i)) for i, child in enumerate(item)]
        # Reversed, so that the first problem in document order is the one reported.
        stack.extend(reversed(children))
    return None


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
