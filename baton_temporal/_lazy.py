"""Names a package exports but loads on first use (PEP 562), so that importing it stays
cheap: the package's ``__getattr__`` and ``__dir__`` come from :func:`lazy_exports`.

Example::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"LedgerStore": "._store"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``table`` is read
    from its module (relative to ``package``) when first asked for, then kept."""

    def __getattr__(name: str) -> Any:
        try:
            module_name = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module_name, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
