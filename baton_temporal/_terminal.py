"""Text from the ledger or a provider, made safe to print on a terminal."""

from __future__ import annotations

__all__ = ["printable", "shown"]


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


def printable(text: str) -> str:
    """:func:`shown` for text of several lines: line breaks and tabs are kept, every other
    control or format character is shown as an escape (error messages carry providers'
    bodies and models' replies).

    Example::

        printable("bad \\x1b[31mRED\\nnext line")   # the escape shown, the break kept
    """
    return "\n".join(
        "\t".join(shown(part) for part in line.split("\t")) for line in text.split("\n")
    )
