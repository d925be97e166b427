"""Stored points as callers see them, under the read rule (docs/architecture.md, "The rule as readers see it")."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..models import ClusterModel
from ..schema import Assignment, ImageMetadataInput, PointView
from ..store.ids import public_point_id
from .kinds import in_model_space, source_view
from .records import OpenCollection

__all__ = ["point_view", "served_views", "served_matches"]


def point_view(point: Any, with_vector: bool = False) -> PointView:
    """A stored point as callers see it."""
    payload = point.payload
    return PointView(
        point_id=public_point_id(point.id), external_id=payload.get("external_id", ""), metadata=payload.get("meta", {}),
        text=(payload.get("source") or {}).get("text", ""), assignment=Assignment.from_payload(payload),
        vector=point.vector.tolist() if with_vector and point.vector is not None else None,
        image=ImageMetadataInput.from_json(payload["source"]["image"])
        if "image" in (payload.get("source") or {}) else None,
        source=source_view(payload.get("source")),
    )


def served_views(coll: OpenCollection, points: Sequence[Any], model: ClusterModel | None, *,
                 with_vector: bool = False) -> list[PointView]:
    """Views of ``points`` with each point's fields as of ``model`` (the served one, read once by the caller).

    The read rule (docs/architecture.md): a point whose stored fields are another version's (a
    write-back, revert or repair is on its way) is shown with the served model's fields computed
    from its vector and ``relabelling`` set, or with no fields when no served model applies to it.
    """
    views = [point_view(p, with_vector) for p in points]
    served = model.version if model is not None else None
    usable = model if model is not None and in_model_space(coll, model) else None
    stale = [i for i, v in enumerate(views)
             if (v.assignment.model_version if v.assignment is not None else None) != served
             and (v.assignment is not None or usable is not None)]
    if not stale:
        return views
    if usable is not None:
        vectors = {str(p.id): p.vector for p in points if p.vector is not None}
        missing = [points[i].id for i in stale if str(points[i].id) not in vectors]
        if missing:
            vectors.update({str(p.id): p.vector for p in coll.store.retrieve(missing, with_vectors=True)})
        rows = [i for i in stale if vectors.get(str(points[i].id)) is not None]
        if rows:
            x = np.stack([np.asarray(vectors[str(points[i].id)], dtype=np.float32) for i in rows])
            for i, five in zip(rows, usable.assign(x).payloads()):
                views[i].assignment = Assignment(**five)
                views[i].relabelling = True
    for i in stale:
        if not views[i].relabelling:  # no served model applies to it (or it vanished meanwhile)
            views[i].assignment = None
            views[i].relabelling = True
    return views


def served_matches(view: PointView, cluster_id: int | None = None, anomaly: bool | None = None) -> bool:
    """A listing's filter, applied to the served fields of a point being relabelled."""
    if not view.relabelling:
        return True
    a = view.assignment
    if a is None:
        return False
    return (cluster_id is None or a.cluster_id == cluster_id) and (anomaly is None or a.is_anomaly == anomaly)
