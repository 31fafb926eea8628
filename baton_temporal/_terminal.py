"""Text from the ledger or a provider, made safe to print on a terminal."""

from __future__ import annotations

__all__ = ["shown"]


def shown(text: str) -> str:
    """``text`` with its control and format characters (escape sequences, bidi overrides)
    written as backslash escapes. Model names in the ledger are what provider replies
    said, so a proxy must not be able to drive the terminal of whoever reads them.

    Example::

        shown("gpt-4o\\x1b[2J")   # 'gpt-4o\\\\x1b[2J', printed as gpt-4o\\x1b[2J
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
