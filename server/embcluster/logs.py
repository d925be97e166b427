"""Structured logging: request ids on every record, text or JSON lines.

The gRPC interceptor (``api/observe.py``) puts each call's request id into
:data:`request_id_var`; :class:`RequestIdFilter` copies it onto every log record handled
while that call runs (``-`` outside a call), and :func:`configure_logging` installs the
filter with a text or JSON formatter on the root logger, once, at start-up.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone
from typing import Literal, TextIO

from .redact import RedactingFilter

__all__ = ["request_id_var", "current_request_id", "RequestIdFilter", "JsonFormatter", "configure_logging",
           "TEXT_FORMAT"]

#: The request id of the gRPC call this code runs for ("" outside a call).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("embcluster_request_id", default="")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_QUIET = ("faiss.loader", "sentence_transformers", "httpx")


def current_request_id() -> str:
    """The request id of the call being handled, or "" outside one."""
    return request_id_var.get()


LOG_MESSAGE_LIMIT = 4000  # characters of one log message (values are echoed through errors.shown)


def clip_record(record: logging.LogRecord) -> None:
    """Cut an over-long message (a caller's value logged whole) to ``LOG_MESSAGE_LIMIT`` characters."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it itself
        return
    if len(message) > LOG_MESSAGE_LIMIT:
        record.msg = f"{message[:LOG_MESSAGE_LIMIT]}...<{len(message)} characters>"
        record.args = ()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a call) and clips long messages; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        clip_record(record)
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, ``request_id`` (+ ``exc``).

    ``request_id`` is null outside a gRPC call.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": rid if (rid := getattr(record, "request_id", None)) not in (None, "", "-")
            else request_id_var.get() or None,
        }
        if record.exc_info:
            out["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: Literal["text", "json"] = "text", *, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one stream handler carrying request ids.

    Args:
        level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
        fmt: ``text`` (human lines with ``[request_id]``) or ``json`` (one object per line).
        stream: Where lines go (default: stderr).

    Returns:
        The installed handler.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())  # no secret (URL password, API key) is ever written
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
