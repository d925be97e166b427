"""Between the Pythonic clients and the protobuf ones: arguments given as models or enum members,
progress callbacks, ``RunFailed`` and stream messages as models (shared by ``Client`` and the
generated ``AsyncClient``)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, cast

from embcluster.api.v1 import embcluster_pb2 as pb

from . import _requests as rq
from .convert import to_model, to_proto
from .enums import Distance, InputKind, LongText
from .errors import RunFailed
from .models import ClusterEvent, ClusteringRun, IngestAck, Point

__all__ = ["kind_name", "distance_name", "as_message", "long_text_name", "progress_callback", "runs_as_models", "run_model",
           "ack_model", "point_model", "cluster_event_model"]


def kind_name(kind: rq.InputKindName | InputKind) -> rq.InputKindName:
    """The protobuf client's name of an input kind (``InputKind.VECTOR`` -> ``"vector"``)."""
    return cast(rq.InputKindName, kind.name.lower() if isinstance(kind, InputKind) else kind)


def distance_name(distance: rq.DistanceName | Distance | None) -> rq.DistanceName | None:
    """The protobuf client's name of a distance (``Distance.EUCLID`` -> ``"euclid"``)."""
    return cast(rq.DistanceName, distance.name.lower() if isinstance(distance, Distance) else distance)


def long_text_name(mode: rq.LongTextName | LongText | None) -> rq.LongTextName | None:
    """The protobuf client's name of a long-text mode (``LongText.POOL`` -> ``"pool"``)."""
    return cast(rq.LongTextName, mode.name.lower() if isinstance(mode, LongText) else mode)


def as_message(value: Any) -> Any:
    """A model given as an argument, as its message (messages and None pass as they are)."""
    return to_proto(value) if dataclasses.is_dataclass(value) else value


def progress_callback(on_progress: Callable[[ClusteringRun], None] | None) -> Callable[[pb.ClusteringRun], None] | None:
    """A progress callback for the protobuf client that hands ``on_progress`` models."""
    if on_progress is None:
        return None
    callback = on_progress
    return lambda run: callback(to_model(run, ClusteringRun))


@contextlib.contextmanager
def runs_as_models() -> Iterator[None]:
    """``RunFailed`` from the protobuf client, raised again with the run as a model."""
    try:
        yield
    except RunFailed as exc:
        if isinstance(exc.run, pb.ClusteringRun):
            raise RunFailed(to_model(exc.run, ClusteringRun)) from None
        raise


def run_model(message: pb.ClusteringRun) -> ClusteringRun:
    """Stream converters: one message as its model."""
    return to_model(message, ClusteringRun)


def ack_model(message: pb.IngestStreamResponse) -> IngestAck:
    return to_model(message, IngestAck)


def point_model(message: pb.Point) -> Point:
    return to_model(message, Point)


def cluster_event_model(message: pb.ClusterEvent) -> ClusterEvent:
    return to_model(message, ClusterEvent)
