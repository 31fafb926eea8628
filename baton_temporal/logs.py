"""A quiet console for workers: one line per failed step attempt, tracebacks on demand.

Temporal's worker logs every failed activity attempt as a warning with the full
traceback (``temporalio.activity``: "Completing activity as failed"), some 25 lines a
time. :func:`configure_logging` installs one console handler on the root logger whose
formatter turns that record into one line::

    WARNING step 'explode' attempt 2/3 failed: ValueError: cannot read the document (flow console-1)

and prints any other record's exception as a one-line suffix. With ``verbose`` (the
CLI's ``--verbose``, or ``BATON_LOG_LEVEL=debug``) the tracebacks come back under the
same lines. Nothing here runs on import: the handler is installed by the ``baton``
commands and the worker program, or by your own program calling it.

Example::

    from baton_temporal.logs import configure_logging
    configure_logging(verbose=False)      # before starting the worker
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from ._terminal import printable, shown

__all__ = ["ConsoleFormatter", "configure_logging", "log_level_from_env", "printable"]


# temporalio tags the record of a failed activity attempt with this extra.
_ACTIVITY_FAILURE = "ActivityFailure"
_MAX_MESSAGE = 300
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_CHATTY = ("alembic", "httpx", "httpx2", "httpcore")
# Where a step's own name travels with its error (set by the step wrapper): a fan-out
# step "assess_gpt_4o" runs the activity "assess".
STEP_ATTRIBUTE = "_baton_step"


def log_level_from_env(environ: Any = None) -> int | None:
    """``BATON_LOG_LEVEL`` as a logging level (None if unset); ValueError names the fix."""
    env = os.environ if environ is None else environ
    raw = env.get("BATON_LOG_LEVEL", "").strip().lower()
    if not raw:
        return None
    if raw not in _LEVELS:
        raise ValueError(
            f"BATON_LOG_LEVEL={raw!r} is not a log level; set it to one of "
            f"{', '.join(k for k in _LEVELS if k != 'warn')}"
        )
    return _LEVELS[raw]


def _one_line(text: str) -> str:
    text = shown(" ".join(text.split()))
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def describe_error(err: BaseException) -> str:
    """``Type: message`` on one line; an ``ApplicationError`` shows its ``type``."""
    kind = getattr(err, "type", None)
    if not isinstance(kind, str) or not kind:
        kind = type(err).__name__
    kind = shown(kind)
    message = getattr(err, "message", None)
    if not isinstance(message, str):
        message = str(err)
    return f"{kind}: {_one_line(message)}" if message else kind


class ConsoleFormatter(logging.Formatter):
    """Formats failed activity attempts as one line, and exceptions as a suffix unless
    ``verbose``; see the module's docstring."""

    def __init__(self, fmt: str, *, verbose: bool = False) -> None:
        super().__init__(fmt)
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and record.__dict__.get("__temporal_error_identifier") == (
            _ACTIVITY_FAILURE
        ):
            record = _attempt_record(record, exc)
        elif exc is not None and not self.verbose:
            record = _copy(record, f"{record.getMessage()}: {describe_error(exc)}")
        if not self.verbose and record.exc_info:
            record = _copy(record, record.getMessage(), keep_exc=False)
        return super().format(record)


def _copy(record: logging.LogRecord, message: str, *, keep_exc: bool = True) -> logging.LogRecord:
    # A copy: other handlers of the same record (a user's file log) still see it whole.
    new = logging.makeLogRecord(record.__dict__)
    new.msg, new.args = message, None
    if not keep_exc:
        new.exc_info, new.exc_text = None, None
    return new


def _attempt_record(record: logging.LogRecord, exc: BaseException) -> logging.LogRecord:
    info = record.__dict__.get("temporal_activity") or {}
    step = getattr(exc, STEP_ATTRIBUTE, None) or info.get("activity_type") or "?"
    attempt = info.get("attempt")
    of = _max_attempts()
    where = f"attempt {attempt}/{of}" if attempt and of else f"attempt {attempt or '?'}"
    final = " (not retried)" if getattr(exc, "non_retryable", False) else ""
    flow = info.get("workflow_id")
    suffix = f" (flow {flow})" if flow else ""
    new = _copy(record, f"step {step!r} {where} failed{final}: {describe_error(exc)}{suffix}")
    new.name = "baton.step"
    return new


def _max_attempts() -> int | None:
    # The record is formatted in the attempt's own task, where the activity is current.
    try:
        from temporalio import activity

        policy = activity.info().retry_policy
    except Exception:
        return None
    if policy is None or not policy.maximum_attempts:
        return None
    return policy.maximum_attempts


def configure_logging(
    verbose: bool | None = None,
    *,
    level: int | None = None,
    timestamps: bool = True,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install baton's console handler on the root logger (replacing one it installed
    before) and return it.

    ``verbose``: print tracebacks (default: when ``BATON_LOG_LEVEL=debug``). ``level``:
    the root level when ``BATON_LOG_LEVEL`` is unset (default INFO; DEBUG if verbose).
    A ``BATON_LOG_LEVEL`` that is not a level raises ValueError naming the levels.
    """
    env_level = log_level_from_env()
    if verbose is None:
        verbose = env_level == logging.DEBUG
    chosen = env_level if env_level is not None else level
    if chosen is None:
        chosen = logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s"
    if timestamps:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ConsoleFormatter(fmt, verbose=verbose))
    handler.set_name("baton.console")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "baton.console":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(chosen)
    # The migration tool announces every step at INFO, the SDKs' HTTP client every LLM
    # request: their warnings still show, the rest only at debug.
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            chosen if chosen <= logging.DEBUG else max(chosen, logging.WARNING)
        )
    return handler
