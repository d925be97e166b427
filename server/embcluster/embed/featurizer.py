"""The featurizer life cycle's shared parts: the ``Featurizer`` protocol and its JSON store.

A featurizer turns the raw records kept under each point's ``source`` into float32 vectors with
fitted state (scalers, vocabularies). Its width is fixed by the collection's schema, so a refit
never changes the collection's dimension. Fitted versions are saved as
``featurizers/f<version>.json`` beside the collection (JSON with ``schema_version``; never
pickle); the collection record names the version every stored vector was written with, each
point's payload carries ``featurizer_version`` and each cluster model records the version it
was fitted on (``params.featurizer_version``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from ..fsio import read_json, write_json_atomic

__all__ = ["Featurizer", "FeaturizerStore"]


@runtime_checkable
class Featurizer(Protocol):
    """Fitted once from raw ``source`` records; applied identically online and in batch."""

    kind: str
    version: int
    provisional: bool

    @property
    def dim(self) -> int:
        """Width of the vectors (fixed by the schema, not by the data)."""
        ...

    def fit(self, records: Sequence[Mapping[str, Any]], *, version: int, provisional: bool) -> "Featurizer":
        """A new featurizer fitted on ``records`` (this one is unchanged)."""
        ...

    def transform(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(len(records), dim)`` float32 vectors."""
        ...

    def to_json(self) -> dict[str, Any]:
        """JSON form including ``schema_version``, ``kind`` and ``version``."""
        ...


_NAME = re.compile(r"^f(\d+)\.json$")


class FeaturizerStore:
    """Fitted featurizer versions of one collection, as JSON files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, featurizer: Featurizer) -> Path:
        """Write (atomically) the featurizer's JSON under its version."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"f{featurizer.version}.json"
        write_json_atomic(path, featurizer.to_json())
        return path

    def load_json(self, version: int) -> dict[str, Any]:
        """The saved JSON of ``version``."""
        data: dict[str, Any] = read_json(self.directory / f"f{version}.json")
        return data

    def versions(self) -> list[int]:
        """Saved versions, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.fullmatch(p.name)))
