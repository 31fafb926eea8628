"""Test helpers: a local stand-in for the LLM providers (see :mod:`.standin`).

Names are loaded on first use, so ``python -m baton_temporal.testing.standin`` and
helpers that live beside it do not import each other for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .standin import Fault, RecordedRequest, StandIn, StreamPlan

__all__ = ["Fault", "RecordedRequest", "StandIn", "StreamPlan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import standin

        return getattr(standin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
