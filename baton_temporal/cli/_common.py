"""What every ``baton`` command shares: exit codes, the user-fixable error, and how an
error is put on one line. The demo and the commands both import it; it imports neither."""

from __future__ import annotations

import re

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "CliError",
    "describe_failure",
    "short_error",
]

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


# ------------------------------------------------------------------------------ helpers


def short_error(err: BaseException) -> str:
    """An exception's message on one line, with Rust/gRPC noise reduced to its reason."""
    text = str(err) or type(err).__name__
    found = re.search(r'message: "([^"]+)"', text)
    if found and "tonic" in text:
        return found.group(1)
    return " ".join(text.split())


def describe_failure(workflow_id: str, err: BaseException) -> str:
    """``workflow <id> failed: <message of each cause, outermost first>`` on one line."""
    messages: list[str] = []
    cause: BaseException | None = getattr(err, "cause", None) or err.__cause__
    while cause is not None:
        message = getattr(cause, "message", None) or str(cause)
        generic = type(cause).__name__ in ("ActivityError", "ChildWorkflowError")
        if message and not generic and not any(message in m for m in messages):
            messages.append(" ".join(message.split()))
        cause = getattr(cause, "cause", None) or cause.__cause__
    return f"workflow {workflow_id} failed: " + (": ".join(messages) or short_error(err))
