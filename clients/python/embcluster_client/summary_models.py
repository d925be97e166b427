"""Cluster summaries as :class:`~embcluster_client.Client` returns them (re-exported by :mod:`.models`).

``ClusterSummary`` is what ``get_cluster`` returns, what ``Cluster.summary`` holds in
``list_clusters`` and what ``Model.summaries`` lists in ``get_model``; see the proto's
``ClusterSummary`` for what each field means.
"""

from __future__ import annotations

from embcluster.api.v1 import embcluster_pb2 as pb

from ._model_base import model_class as _model
from ._model_base import proto_field as _proto
from .enums import SummaryKind

__all__ = ["ClusterLabelChange", "SummaryKeyword", "SummaryField", "SummaryRepresentative", "ClusterSummary"]


@_model
class ClusterLabelChange:
    """A persisting cluster whose label a run replaced (its keywords or fields really changed)."""

    cluster_id: int
    old_label: str
    new_label: str
    similarity: float
    proto: pb.ClusterLabelChange = _proto()


@_model
class SummaryKeyword:
    """A distinctive term of a cluster (EVENT: a field finding's text) and its score."""

    term: str
    score: float
    proto: pb.SummaryKeyword = _proto()


@_model
class SummaryField:
    """An EVENT field that sets a cluster apart (numeric: median..high; categorical: category..lift)."""

    field: str
    kind: str  # numeric | categorical
    text: str
    score: float
    median: float | None
    overall_median: float | None
    effect: float | None
    low: float | None
    high: float | None
    category: str | None
    share: float | None
    overall_share: float | None
    lift: float | None
    proto: pb.SummaryField = _proto()


@_model
class SummaryRepresentative:
    """A member near its cluster's centroid: the caller's id, a short excerpt, its distance."""

    id: str
    text: str
    distance: float
    proto: pb.SummaryRepresentative = _proto()


@_model
class ClusterSummary:
    """What one cluster of a model version is, as the run that fitted it computed it."""

    cluster_id: int
    model_version: int
    kind: SummaryKind
    size: int
    share: float
    radius: float
    anomaly_count: int
    label: str
    label_changed: bool
    previous_label: str | None  # None: a new cluster id (or no previous summaries)
    keywords: list[SummaryKeyword]
    fields: list[SummaryField]
    representatives: list[SummaryRepresentative]
    sample_size: int
    proto: pb.ClusterSummary = _proto()
