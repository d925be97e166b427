"""The service's enums as Python enums: members named like the proto values without their prefix.

``RunState.SUCCEEDED`` is ``RUN_STATE_SUCCEEDED``. Members are ``str`` enums whose value is the
name, so ``str(run.state) == "SUCCEEDED"``, ``run.state == "SUCCEEDED"`` and JSON output show the
name, never the wire number (``member.number`` has it).
"""

from __future__ import annotations

import enum
import re
from typing import Self

from google.protobuf.descriptor import EnumDescriptor

from embcluster.api.v1 import embcluster_pb2 as pb

__all__ = ["ProtoEnum", "InputKind", "Distance", "EventFieldType", "RunState", "LongText", "SummaryKind", "ClusterEventKind"]


class ProtoEnum(enum.StrEnum):
    """A proto enum's values by their short names (the enum named like the proto enum)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        """The proto enum of the same name in ``embcluster.v1`` (top level, or nested in a message)."""
        found = pb.DESCRIPTOR.enum_types_by_name.get(cls.__name__)
        if found is not None:
            return found
        for message in pb.DESCRIPTOR.message_types_by_name.values():  # e.g. CollectionSettings.LongText
            if cls.__name__ in message.enum_types_by_name:
                return message.enum_types_by_name[cls.__name__]
        raise KeyError(f"no proto enum named {cls.__name__!r} in embcluster.v1")

    @classmethod
    def prefix(cls) -> str:
        """The proto values' common prefix, e.g. ``RUN_STATE_``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).upper() + "_"

    @classmethod
    def from_number(cls, number: int) -> Self:
        """The member for a wire number; an unknown number (a newer server's) is ``UNSPECIFIED``."""
        value = cls.descriptor().values_by_number.get(number)
        if value is None:
            return cls["UNSPECIFIED"]
        return cls[value.name.removeprefix(cls.prefix())]

    @property
    def number(self) -> int:
        """The wire number."""
        return int(self.descriptor().values_by_name[self.prefix() + self.name].number)


class InputKind(ProtoEnum):
    """What a collection's items are."""

    UNSPECIFIED = "UNSPECIFIED"
    TEXT = "TEXT"  # embedded with a sentence-transformers model
    VECTOR = "VECTOR"  # caller-supplied vectors of a fixed dimension
    EVENT = "EVENT"  # typed events featurized by the collection's EventSchema
    IMAGE_METADATA = "IMAGE_METADATA"  # image metadata rendered as text (+ numeric attributes)


class Distance(ProtoEnum):
    """How a collection measures distance."""

    UNSPECIFIED = "UNSPECIFIED"
    COSINE = "COSINE"  # cluster_distance = 1 - cos
    EUCLID = "EUCLID"  # cluster_distance = L2


class EventFieldType(ProtoEnum):
    """How an event field is featurized."""

    UNSPECIFIED = "UNSPECIFIED"
    NUMERIC = "NUMERIC"
    CATEGORICAL = "CATEGORICAL"
    TIMESTAMP = "TIMESTAMP"
    TEXT = "TEXT"


class RunState(ProtoEnum):
    """The state of a clustering run."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"  # waits for the collection's automatic run to end

    @property
    def finished(self) -> bool:
        """SUCCEEDED, FAILED or CANCELLED: the run will not change any more."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class LongText(ProtoEnum):
    """How a text longer than the model's window is embedded (``CollectionSettings.long_text``)."""

    UNSPECIFIED = "UNSPECIFIED"  # at creation: TRUNCATE; in an update: unchanged
    TRUNCATE = "TRUNCATE"  # the first window only: what the model itself reads
    POOL = "POOL"  # windows of the model's length, embedded and mean-pooled


class SummaryKind(ProtoEnum):
    """What a cluster summary holds besides its figures and representatives."""

    UNSPECIFIED = "UNSPECIFIED"  # not summarised (a version saved before summaries, or its run could not)
    KEYWORDS = "KEYWORDS"  # TEXT, IMAGE_METADATA: keywords and a label made from them
    FIELDS = "FIELDS"  # EVENT: the fields that set the cluster apart, and a label
    REPRESENTATIVES_ONLY = "REPRESENTATIVES_ONLY"  # VECTOR, or no stored source


class ClusterEventKind(ProtoEnum):
    """What happened to a cluster in a new model version (``ClusterEvent.kind``)."""

    UNSPECIFIED = "UNSPECIFIED"
    BIRTH = "BIRTH"  # a new cluster no split or merge explains
    DEATH = "DEATH"  # a cluster gone, not by a split or a merge
    SPLIT = "SPLIT"  # an old cluster went to several new ones
    MERGE = "MERGE"  # a new cluster came from several old ones
    GROW = "GROW"  # a persisting cluster's share of the points rose past the threshold
    SHRINK = "SHRINK"  # ... or fell past it
