"""Keep secrets out of logs and error messages: URL passwords, bearer tokens, API keys.

:func:`redact_url` for a URL the code prints on purpose (``QDRANT_URL`` in start-up errors);
:func:`redact` for free text (an exception's message that may quote a URL); and
:class:`RedactingFilter`, installed on the log handler by :func:`embcluster.logs.configure_logging`,
applies :func:`redact` to every record, so a secret that slips into a message is still not written.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "redact", "redact_url", "RedactingFilter"]

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s'\",;]+")
_KEY = re.compile(r"\bemb_[A-Za-z0-9_-]{16,}")
_PARAM = re.compile(r"(?i)\b((?:api[_-]?key|apikey|token|access[_-]?token|password|passwd|secret)=)[^&\s'\"]+")
_FIELD = re.compile(r"(?i)(['\"]?(?:api[_-]?key|authorization|password|secret)['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)[^\s'\",}]+")


def redact(text: str) -> str:
    """``text`` with URL passwords, bearer tokens, embcluster keys and ``key=value`` secrets masked."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _KEY.sub(f"emb_{MASK}", text)
    text = _PARAM.sub(rf"\g<1>{MASK}", text)
    return _FIELD.sub(rf"\g<1>{MASK}", text)


def redact_url(url: str) -> str:
    """A URL safe to print: the password of its user part and secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) through :func:`redact`; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
