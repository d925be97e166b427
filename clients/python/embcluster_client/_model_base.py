"""What every model of :mod:`embcluster_client.models` is made of: a frozen dataclass with a ``proto`` field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["model_class", "proto_field"]

model_class = dataclass(frozen=True)


def proto_field() -> Any:
    """The ``proto`` field: the message the model was read from, outside ``==`` and ``repr``."""
    return field(repr=False, compare=False)
