"""Cluster life-cycle events as :class:`~embcluster_client.Client` returns them (re-exported by :mod:`.models`).

``Model.events`` lists them (``get_model``, ``list_models``) and ``watch_cluster_events`` streams them;
see the proto's ``ClusterEvent`` for what each field means.
"""

from __future__ import annotations

from embcluster.api.v1 import embcluster_pb2 as pb

from ._model_base import model_class as _model
from ._model_base import proto_field as _proto
from .enums import ClusterEventKind

__all__ = ["ClusterEvent"]


@_model
class ClusterEvent:
    """What one model version did to one cluster id, against the version it replaced.

    ``kind`` BIRTH, DEATH, SPLIT (``cluster_id`` went to ``related_ids``), MERGE (``cluster_id``
    came from ``related_ids``), GROW or SHRINK (its share of the points); sizes and shares are
    ``cluster_id``'s own in ``previous_version`` (before) and ``model_version`` (after).
    """

    kind: ClusterEventKind
    cluster_id: int
    related_ids: list[int]
    size_before: int
    size_after: int
    share_before: float
    share_after: float
    model_version: int
    previous_version: int
    full_pass: bool
    proto: pb.ClusterEvent = _proto()
