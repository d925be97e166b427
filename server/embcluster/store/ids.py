"""Point ids as users see them: UUID strings, and the unsigned-int ids of attached Qdrant collections.

An attached collection may use unsigned 64-bit int ids; the service carries each as a UUID whose
high 64 bits are :data:`INT_ID_TAG` and shows it as the int. Plain ``uuid`` only: importing this
never loads a Qdrant client (the pipeline needs it whatever the backend).
"""

from __future__ import annotations

import uuid

__all__ = ["INT_ID_TAG", "int_point_id", "tagged_int", "public_point_id", "parse_public_point_id"]

INT_ID_TAG = 0x9E3779B97F4A7C15  # high 64 bits of the UUID that carries an unsigned-int point id
_TAG_SHIFT = 64
_LOW_MASK = (1 << 64) - 1


def int_point_id(n: int) -> str:
    """The UUID string that carries the unsigned-int Qdrant id ``n`` through the service."""
    if not 0 <= n <= _LOW_MASK:
        raise ValueError(f"point id {n} is not an unsigned 64-bit int")
    return str(uuid.UUID(int=(INT_ID_TAG << _TAG_SHIFT) | n))


def tagged_int(u: uuid.UUID) -> int | None:
    """The unsigned int ``u`` carries, or None for an ordinary UUID."""
    return u.int & _LOW_MASK if u.int >> _TAG_SHIFT == INT_ID_TAG else None


def public_point_id(pid: str) -> str:
    """How a point id is shown to users: the int for a tagged id, else the UUID string."""
    try:
        n = tagged_int(uuid.UUID(pid))
    except ValueError:
        return pid
    return str(n) if n is not None else pid


def parse_public_point_id(text: str) -> str:
    """Inverse of :func:`public_point_id`: an unsigned int or a UUID; ``ValueError`` otherwise."""
    if text.isdigit():
        return int_point_id(int(text))
    return str(uuid.UUID(text))
