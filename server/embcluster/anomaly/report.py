"""What a model version records about its anomaly scorer: is there a small cluster to stand out from?

A cluster-based scorer only finds rare behaviour when the fit has *small* clusters next to large
ones. When none is small the ``cblof`` scorer is plain distance, and an anomaly group that formed
its own cluster scores low; users must be able to see that, so every model version stores this
summary (``metrics["anomaly"]``), and ``GetModel`` and ``ExplainPoint`` return it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .ensemble import ScoreComponent

__all__ = ["anomaly_summary"]


def anomaly_summary(scorer: str, sizes: np.ndarray, large: np.ndarray,
                    components: Sequence[ScoreComponent]) -> dict[str, Any]:
    """Small-cluster counts and sample shares of the grouping and of each ensemble component.

    Args:
        scorer: The scorer the model uses.
        sizes: Fit-sample members per grouping centroid row.
        large: Large-cluster mask of the grouping model.
        components: The ensemble's fits (empty for the other scorers).

    Returns:
        ``small_clusters`` and ``small_share`` of what the scorer uses (the grouping for
        ``cblof``, the ensemble's fits summed / at their largest for ``ensemble``), ``degenerate``
        (the scorer has no small cluster at all, so it cannot single out a rare group), and the
        per-fit figures.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    populated = sizes > 0
    small = populated & ~np.asarray(large, dtype=bool)
    grouping = {"k": int(len(sizes)), "small_clusters": int(small.sum()),
                "small_share": float(sizes[small].sum() / max(sizes.sum(), 1.0))}
    comps = [{"k": c.k, "small_clusters": c.small_clusters, "small_share": c.small_share} for c in components]
    if scorer == "ensemble" and comps:
        small_clusters = sum(c["small_clusters"] for c in comps)
        small_share = max(c["small_share"] for c in comps)
    else:
        small_clusters, small_share = grouping["small_clusters"], grouping["small_share"]
    return {"scorer": scorer, "small_clusters": int(small_clusters), "small_share": float(small_share),
            "degenerate": scorer in ("ensemble", "cblof") and small_clusters == 0,
            "grouping": grouping, "components": comps}
