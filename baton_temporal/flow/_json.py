"""What JSON can hold: the check behind step args (at build time) and step results."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["find_non_json"]


def find_non_json(value: Any, path: str = "") -> str | None:
    """Describe the first value under ``value`` that JSON cannot hold, with its key path."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'value'} is {value!r}"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'value'} has a non-string key {key!r}"
            found = find_non_json(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_non_json(item, f"{path}[{i}]")
            if found:
                return found
        return None
    return f"{path or 'value'} is a {type(value).__name__}"
