"""Which input fields push a point away from its reference cluster (ExplainPoint of EVENT collections).

An event vector is the concatenation of one block per schema field (each scaled by the field's
weight), so the squared distance to a centroid splits exactly into per-field parts. For the
cosine metric both vectors are unit-normalised first (``|a - b|^2 = 2 (1 - cos)``), so the parts
add up to that metric's geometry too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..store.base import Metric

__all__ = ["FieldContribution", "field_contributions"]


@dataclass(frozen=True)
class FieldContribution:
    """One field's part of the distance between a point and its reference centroid.

    Attributes:
        field: The schema field.
        share: Its share of the squared distance (the shares of all fields add up to 1).
        distance: The distance within the field's block alone (weighted, as the vector holds it).
    """

    field: str
    share: float
    distance: float


def field_contributions(x: np.ndarray, centroid: np.ndarray, layout: Sequence[tuple[str, int]],
                        metric: Metric) -> list[FieldContribution]:
    """Per-field contributions, largest first.

    Args:
        x: The point's vector ``(d,)``.
        centroid: The reference centroid ``(d,)``.
        layout: ``(field, width)`` of each block, in vector order; widths add up to ``d``.
        metric: The collection's metric.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(centroid, dtype=np.float64)
    if metric == "cosine":
        a = a / max(float(np.linalg.norm(a)), 1e-12)
        b = b / max(float(np.linalg.norm(b)), 1e-12)
    sq = (a - b) ** 2
    total = float(sq.sum())
    out = []
    start = 0
    for name, width in layout:
        part = float(sq[start:start + width].sum())
        out.append(FieldContribution(field=name, share=part / total if total > 0 else 0.0,
                                     distance=float(np.sqrt(part))))
        start += width
    return sorted(out, key=lambda c: -c.share)
