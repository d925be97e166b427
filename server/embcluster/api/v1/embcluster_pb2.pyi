import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_TEXT: _ClassVar[InputKind]
    INPUT_KIND_VECTOR: _ClassVar[InputKind]
    INPUT_KIND_EVENT: _ClassVar[InputKind]
    INPUT_KIND_IMAGE_METADATA: _ClassVar[InputKind]

class Distance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISTANCE_UNSPECIFIED: _ClassVar[Distance]
    DISTANCE_COSINE: _ClassVar[Distance]
    DISTANCE_EUCLID: _ClassVar[Distance]

class EventFieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_FIELD_TYPE_UNSPECIFIED: _ClassVar[EventFieldType]
    EVENT_FIELD_TYPE_NUMERIC: _ClassVar[EventFieldType]
    EVENT_FIELD_TYPE_CATEGORICAL: _ClassVar[EventFieldType]
    EVENT_FIELD_TYPE_TIMESTAMP: _ClassVar[EventFieldType]
    EVENT_FIELD_TYPE_TEXT: _ClassVar[EventFieldType]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_PENDING: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]

class ClusterEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLUSTER_EVENT_KIND_UNSPECIFIED: _ClassVar[ClusterEventKind]
    CLUSTER_EVENT_KIND_BIRTH: _ClassVar[ClusterEventKind]
    CLUSTER_EVENT_KIND_DEATH: _ClassVar[ClusterEventKind]
    CLUSTER_EVENT_KIND_SPLIT: _ClassVar[ClusterEventKind]
    CLUSTER_EVENT_KIND_MERGE: _ClassVar[ClusterEventKind]
    CLUSTER_EVENT_KIND_GROW: _ClassVar[ClusterEventKind]
    CLUSTER_EVENT_KIND_SHRINK: _ClassVar[ClusterEventKind]

class SummaryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUMMARY_KIND_UNSPECIFIED: _ClassVar[SummaryKind]
    SUMMARY_KIND_KEYWORDS: _ClassVar[SummaryKind]
    SUMMARY_KIND_FIELDS: _ClassVar[SummaryKind]
    SUMMARY_KIND_REPRESENTATIVES_ONLY: _ClassVar[SummaryKind]
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_TEXT: InputKind
INPUT_KIND_VECTOR: InputKind
INPUT_KIND_EVENT: InputKind
INPUT_KIND_IMAGE_METADATA: InputKind
DISTANCE_UNSPECIFIED: Distance
DISTANCE_COSINE: Distance
DISTANCE_EUCLID: Distance
EVENT_FIELD_TYPE_UNSPECIFIED: EventFieldType
EVENT_FIELD_TYPE_NUMERIC: EventFieldType
EVENT_FIELD_TYPE_CATEGORICAL: EventFieldType
EVENT_FIELD_TYPE_TIMESTAMP: EventFieldType
EVENT_FIELD_TYPE_TEXT: EventFieldType
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_PENDING: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_QUEUED: RunState
CLUSTER_EVENT_KIND_UNSPECIFIED: ClusterEventKind
CLUSTER_EVENT_KIND_BIRTH: ClusterEventKind
CLUSTER_EVENT_KIND_DEATH: ClusterEventKind
CLUSTER_EVENT_KIND_SPLIT: ClusterEventKind
CLUSTER_EVENT_KIND_MERGE: ClusterEventKind
CLUSTER_EVENT_KIND_GROW: ClusterEventKind
CLUSTER_EVENT_KIND_SHRINK: ClusterEventKind
SUMMARY_KIND_UNSPECIFIED: SummaryKind
SUMMARY_KIND_KEYWORDS: SummaryKind
SUMMARY_KIND_FIELDS: SummaryKind
SUMMARY_KIND_REPRESENTATIVES_ONLY: SummaryKind

class CollectionSettings(_message.Message):
    __slots__ = ("contamination", "min_cluster_size", "default_k", "seed", "anomaly_scorer", "threshold_mode", "anomaly_threshold", "schedule", "long_text")
    class LongText(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        LONG_TEXT_UNSPECIFIED: _ClassVar[CollectionSettings.LongText]
        LONG_TEXT_TRUNCATE: _ClassVar[CollectionSettings.LongText]
        LONG_TEXT_POOL: _ClassVar[CollectionSettings.LongText]
    LONG_TEXT_UNSPECIFIED: CollectionSettings.LongText
    LONG_TEXT_TRUNCATE: CollectionSettings.LongText
    LONG_TEXT_POOL: CollectionSettings.LongText
    CONTAMINATION_FIELD_NUMBER: _ClassVar[int]
    MIN_CLUSTER_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_SCORER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MODE_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    LONG_TEXT_FIELD_NUMBER: _ClassVar[int]
    contamination: float
    min_cluster_size: int
    default_k: int
    seed: int
    anomaly_scorer: str
    threshold_mode: str
    anomaly_threshold: float
    schedule: Schedule
    long_text: CollectionSettings.LongText
    def __init__(self, contamination: _Optional[float] = ..., min_cluster_size: _Optional[int] = ..., default_k: _Optional[int] = ..., seed: _Optional[int] = ..., anomaly_scorer: _Optional[str] = ..., threshold_mode: _Optional[str] = ..., anomaly_threshold: _Optional[float] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., long_text: _Optional[_Union[CollectionSettings.LongText, str]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("interval_s", "after_changes", "drift_psi", "k", "drift_ks", "anomaly_ratio", "anomaly_rate", "k_max")
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    AFTER_CHANGES_FIELD_NUMBER: _ClassVar[int]
    DRIFT_PSI_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    DRIFT_KS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_RATIO_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_RATE_FIELD_NUMBER: _ClassVar[int]
    K_MAX_FIELD_NUMBER: _ClassVar[int]
    interval_s: float
    after_changes: int
    drift_psi: float
    k: int
    drift_ks: float
    anomaly_ratio: float
    anomaly_rate: float
    k_max: int
    def __init__(self, interval_s: _Optional[float] = ..., after_changes: _Optional[int] = ..., drift_psi: _Optional[float] = ..., k: _Optional[int] = ..., drift_ks: _Optional[float] = ..., anomaly_ratio: _Optional[float] = ..., anomaly_rate: _Optional[float] = ..., k_max: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "input_kind", "distance", "embedding_model", "vector_dim", "store_source", "settings", "image_metadata", "event_schema", "embedding_tier", "vector_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    VECTOR_DIM_FIELD_NUMBER: _ClassVar[int]
    STORE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_METADATA_FIELD_NUMBER: _ClassVar[int]
    EVENT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_TIER_FIELD_NUMBER: _ClassVar[int]
    VECTOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_kind: InputKind
    distance: Distance
    embedding_model: str
    vector_dim: int
    store_source: bool
    settings: CollectionSettings
    image_metadata: ImageMetadataSpec
    event_schema: EventSchema
    embedding_tier: str
    vector_index: VectorIndexSettings
    def __init__(self, name: _Optional[str] = ..., input_kind: _Optional[_Union[InputKind, str]] = ..., distance: _Optional[_Union[Distance, str]] = ..., embedding_model: _Optional[str] = ..., vector_dim: _Optional[int] = ..., store_source: _Optional[bool] = ..., settings: _Optional[_Union[CollectionSettings, _Mapping]] = ..., image_metadata: _Optional[_Union[ImageMetadataSpec, _Mapping]] = ..., event_schema: _Optional[_Union[EventSchema, _Mapping]] = ..., embedding_tier: _Optional[str] = ..., vector_index: _Optional[_Union[VectorIndexSettings, _Mapping]] = ...) -> None: ...

class VectorIndexSettings(_message.Message):
    __slots__ = ("m", "ef_construct", "ef", "min_points", "quantization")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCT_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    MIN_POINTS_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construct: int
    ef: int
    min_points: int
    quantization: str
    def __init__(self, m: _Optional[int] = ..., ef_construct: _Optional[int] = ..., ef: _Optional[int] = ..., min_points: _Optional[int] = ..., quantization: _Optional[str] = ...) -> None: ...

class VectorIndexState(_message.Message):
    __slots__ = ("points", "indexed_points", "building")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_POINTS_FIELD_NUMBER: _ClassVar[int]
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    points: int
    indexed_points: int
    building: bool
    def __init__(self, points: _Optional[int] = ..., indexed_points: _Optional[int] = ..., building: _Optional[bool] = ...) -> None: ...

class EventField(_message.Message):
    __slots__ = ("name", "type", "weight", "required", "log", "clip", "buckets")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CLIP_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: EventFieldType
    weight: float
    required: bool
    log: bool
    clip: float
    buckets: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[EventFieldType, str]] = ..., weight: _Optional[float] = ..., required: _Optional[bool] = ..., log: _Optional[bool] = ..., clip: _Optional[float] = ..., buckets: _Optional[int] = ...) -> None: ...

class EventSchema(_message.Message):
    __slots__ = ("fields", "entity_key", "window_days", "max_profile_events")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROFILE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[EventField]
    entity_key: str
    window_days: float
    max_profile_events: int
    def __init__(self, fields: _Optional[_Iterable[_Union[EventField, _Mapping]]] = ..., entity_key: _Optional[str] = ..., window_days: _Optional[float] = ..., max_profile_events: _Optional[int] = ...) -> None: ...

class FieldValue(_message.Message):
    __slots__ = ("number_value", "string_value", "bool_value", "timestamp_value")
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    number_value: float
    string_value: str
    bool_value: bool
    timestamp_value: _timestamp_pb2.Timestamp
    def __init__(self, number_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ..., timestamp_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, FieldValue]
    def __init__(self, fields: _Optional[_Mapping[str, FieldValue]] = ...) -> None: ...

class InferSchemaRequest(_message.Message):
    __slots__ = ("samples", "entity_key")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[Event]
    entity_key: str
    def __init__(self, samples: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., entity_key: _Optional[str] = ...) -> None: ...

class InferSchemaResponse(_message.Message):
    __slots__ = ("schema", "notes")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    schema: EventSchema
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema: _Optional[_Union[EventSchema, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class FitFeaturizerRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ImageMetadataSpec(_message.Message):
    __slots__ = ("text_fields", "text_attributes", "numeric_attributes")
    TEXT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    text_fields: _containers.RepeatedScalarFieldContainer[str]
    text_attributes: _containers.RepeatedScalarFieldContainer[str]
    numeric_attributes: _containers.RepeatedCompositeFieldContainer[NumericAttribute]
    def __init__(self, text_fields: _Optional[_Iterable[str]] = ..., text_attributes: _Optional[_Iterable[str]] = ..., numeric_attributes: _Optional[_Iterable[_Union[NumericAttribute, _Mapping]]] = ...) -> None: ...

class NumericAttribute(_message.Message):
    __slots__ = ("key", "low", "high", "log", "weight", "default_value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    low: float
    high: float
    log: bool
    weight: float
    default_value: float
    def __init__(self, key: _Optional[str] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., log: _Optional[bool] = ..., weight: _Optional[float] = ..., default_value: _Optional[float] = ...) -> None: ...

class ImageMetadata(_message.Message):
    __slots__ = ("title", "caption", "alt_text", "tags", "attributes")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    ALT_TEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    title: str
    caption: str
    alt_text: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    attributes: _struct_pb2.Struct
    def __init__(self, title: _Optional[str] = ..., caption: _Optional[str] = ..., alt_text: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "input_kind", "distance", "dim", "embedder", "embedder_fingerprint", "store_source", "settings", "point_count", "served_model_version", "cluster_count", "anomaly_count", "created_at", "image_metadata", "event_schema", "featurizer_version", "featurizer_provisional", "attached", "active_run", "last_run", "embedding_tier", "vector_index", "index_state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STORE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERVED_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_METADATA_FIELD_NUMBER: _ClassVar[int]
    EVENT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    FEATURIZER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURIZER_PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUN_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_TIER_FIELD_NUMBER: _ClassVar[int]
    VECTOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_kind: InputKind
    distance: Distance
    dim: int
    embedder: str
    embedder_fingerprint: str
    store_source: bool
    settings: CollectionSettings
    point_count: int
    served_model_version: int
    cluster_count: int
    anomaly_count: int
    created_at: str
    image_metadata: ImageMetadataSpec
    event_schema: EventSchema
    featurizer_version: int
    featurizer_provisional: bool
    attached: AttachedSource
    active_run: ClusteringRun
    last_run: ClusteringRun
    embedding_tier: str
    vector_index: VectorIndexSettings
    index_state: VectorIndexState
    def __init__(self, name: _Optional[str] = ..., input_kind: _Optional[_Union[InputKind, str]] = ..., distance: _Optional[_Union[Distance, str]] = ..., dim: _Optional[int] = ..., embedder: _Optional[str] = ..., embedder_fingerprint: _Optional[str] = ..., store_source: _Optional[bool] = ..., settings: _Optional[_Union[CollectionSettings, _Mapping]] = ..., point_count: _Optional[int] = ..., served_model_version: _Optional[int] = ..., cluster_count: _Optional[int] = ..., anomaly_count: _Optional[int] = ..., created_at: _Optional[str] = ..., image_metadata: _Optional[_Union[ImageMetadataSpec, _Mapping]] = ..., event_schema: _Optional[_Union[EventSchema, _Mapping]] = ..., featurizer_version: _Optional[int] = ..., featurizer_provisional: _Optional[bool] = ..., attached: _Optional[_Union[AttachedSource, _Mapping]] = ..., active_run: _Optional[_Union[ClusteringRun, _Mapping]] = ..., last_run: _Optional[_Union[ClusteringRun, _Mapping]] = ..., embedding_tier: _Optional[str] = ..., vector_index: _Optional[_Union[VectorIndexSettings, _Mapping]] = ..., index_state: _Optional[_Union[VectorIndexState, _Mapping]] = ...) -> None: ...

class AttachedSource(_message.Message):
    __slots__ = ("qdrant_collection", "vector_name", "field_prefix")
    QDRANT_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    FIELD_PREFIX_FIELD_NUMBER: _ClassVar[int]
    qdrant_collection: str
    vector_name: str
    field_prefix: str
    def __init__(self, qdrant_collection: _Optional[str] = ..., vector_name: _Optional[str] = ..., field_prefix: _Optional[str] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: CollectionSettings
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[CollectionSettings, _Mapping]] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class AttachCollectionRequest(_message.Message):
    __slots__ = ("name", "qdrant_collection", "vector_name", "distance", "field_prefix", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QDRANT_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FIELD_PREFIX_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    qdrant_collection: str
    vector_name: str
    distance: Distance
    field_prefix: str
    settings: CollectionSettings
    def __init__(self, name: _Optional[str] = ..., qdrant_collection: _Optional[str] = ..., vector_name: _Optional[str] = ..., distance: _Optional[_Union[Distance, str]] = ..., field_prefix: _Optional[str] = ..., settings: _Optional[_Union[CollectionSettings, _Mapping]] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values", "f32")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    F32_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    f32: bytes
    def __init__(self, values: _Optional[_Iterable[float]] = ..., f32: _Optional[bytes] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "text", "vector", "image", "event", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    vector: Vector
    image: ImageMetadata
    event: Event
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., image: _Optional[_Union[ImageMetadata, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("cluster_id", "cluster_distance", "anomaly_score", "is_anomaly", "model_version")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ANOMALY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    cluster_distance: float
    anomaly_score: float
    is_anomaly: bool
    model_version: int
    def __init__(self, cluster_id: _Optional[int] = ..., cluster_distance: _Optional[float] = ..., anomaly_score: _Optional[float] = ..., is_anomaly: _Optional[bool] = ..., model_version: _Optional[int] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("collection", "items")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, collection: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("point_id", "external_id", "assignment", "truncated", "embedding_reused")
    POINT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_REUSED_FIELD_NUMBER: _ClassVar[int]
    point_id: str
    external_id: str
    assignment: Assignment
    truncated: bool
    embedding_reused: bool
    def __init__(self, point_id: _Optional[str] = ..., external_id: _Optional[str] = ..., assignment: _Optional[_Union[Assignment, _Mapping]] = ..., truncated: _Optional[bool] = ..., embedding_reused: _Optional[bool] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("results", "truncated_count", "embedding_reused_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_REUSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    truncated_count: int
    embedding_reused_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ..., truncated_count: _Optional[int] = ..., embedding_reused_count: _Optional[int] = ...) -> None: ...

class DeletePointsRequest(_message.Message):
    __slots__ = ("collection", "ids", "point_ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    POINT_IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    point_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., point_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeletePointsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("point_id", "external_id", "metadata", "text", "assignment", "vector", "image", "source", "relabelling")
    POINT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RELABELLING_FIELD_NUMBER: _ClassVar[int]
    point_id: str
    external_id: str
    metadata: _struct_pb2.Struct
    text: str
    assignment: Assignment
    vector: Vector
    image: ImageMetadata
    source: _struct_pb2.Struct
    relabelling: bool
    def __init__(self, point_id: _Optional[str] = ..., external_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., text: _Optional[str] = ..., assignment: _Optional[_Union[Assignment, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., image: _Optional[_Union[ImageMetadata, _Mapping]] = ..., source: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., relabelling: _Optional[bool] = ...) -> None: ...

class GetPointRequest(_message.Message):
    __slots__ = ("collection", "id", "point_id", "with_vector")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    POINT_ID_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    id: str
    point_id: str
    with_vector: bool
    def __init__(self, collection: _Optional[str] = ..., id: _Optional[str] = ..., point_id: _Optional[str] = ..., with_vector: _Optional[bool] = ...) -> None: ...

class ListClusterMembersRequest(_message.Message):
    __slots__ = ("collection", "cluster_id", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    cluster_id: int
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., cluster_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAnomaliesRequest(_message.Message):
    __slots__ = ("collection", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPointsRequest(_message.Message):
    __slots__ = ("collection", "page_size", "page_token", "cluster_id", "is_anomaly", "model_version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    IS_ANOMALY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    page_size: int
    page_token: str
    cluster_id: int
    is_anomaly: bool
    model_version: int
    def __init__(self, collection: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., cluster_id: _Optional[int] = ..., is_anomaly: _Optional[bool] = ..., model_version: _Optional[int] = ...) -> None: ...

class ListPointsResponse(_message.Message):
    __slots__ = ("points", "next_page_token")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    next_page_token: str
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class KRange(_message.Message):
    __slots__ = ("min", "max")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ...) -> None: ...

class StartClusteringRequest(_message.Message):
    __slots__ = ("collection", "k", "k_range", "seed", "sample_size", "n_init")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K_RANGE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_INIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    k: int
    k_range: KRange
    seed: int
    sample_size: int
    n_init: int
    def __init__(self, collection: _Optional[str] = ..., k: _Optional[int] = ..., k_range: _Optional[_Union[KRange, _Mapping]] = ..., seed: _Optional[int] = ..., sample_size: _Optional[int] = ..., n_init: _Optional[int] = ...) -> None: ...

class KScore(_message.Message):
    __slots__ = ("k", "silhouette", "inertia", "davies_bouldin", "calinski_harabasz", "knee", "mean_rank", "chosen")
    K_FIELD_NUMBER: _ClassVar[int]
    SILHOUETTE_FIELD_NUMBER: _ClassVar[int]
    INERTIA_FIELD_NUMBER: _ClassVar[int]
    DAVIES_BOULDIN_FIELD_NUMBER: _ClassVar[int]
    CALINSKI_HARABASZ_FIELD_NUMBER: _ClassVar[int]
    KNEE_FIELD_NUMBER: _ClassVar[int]
    MEAN_RANK_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    k: int
    silhouette: float
    inertia: float
    davies_bouldin: float
    calinski_harabasz: float
    knee: bool
    mean_rank: float
    chosen: bool
    def __init__(self, k: _Optional[int] = ..., silhouette: _Optional[float] = ..., inertia: _Optional[float] = ..., davies_bouldin: _Optional[float] = ..., calinski_harabasz: _Optional[float] = ..., knee: _Optional[bool] = ..., mean_rank: _Optional[float] = ..., chosen: _Optional[bool] = ...) -> None: ...

class ClusteringRun(_message.Message):
    __slots__ = ("run_id", "collection", "state", "phase", "progress", "error", "model_version", "k", "k_scores", "created_at", "finished_at", "points_labelled", "trigger", "attempt", "waiting_for_run_id", "waiting_for_trigger", "label_changes", "trigger_detail")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K_SCORES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    POINTS_LABELLED_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    LABEL_CHANGES_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_DETAIL_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    collection: str
    state: RunState
    phase: str
    progress: float
    error: str
    model_version: int
    k: int
    k_scores: _containers.RepeatedCompositeFieldContainer[KScore]
    created_at: str
    finished_at: str
    points_labelled: int
    trigger: str
    attempt: int
    waiting_for_run_id: str
    waiting_for_trigger: str
    label_changes: _containers.RepeatedCompositeFieldContainer[ClusterLabelChange]
    trigger_detail: str
    def __init__(self, run_id: _Optional[str] = ..., collection: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., phase: _Optional[str] = ..., progress: _Optional[float] = ..., error: _Optional[str] = ..., model_version: _Optional[int] = ..., k: _Optional[int] = ..., k_scores: _Optional[_Iterable[_Union[KScore, _Mapping]]] = ..., created_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., points_labelled: _Optional[int] = ..., trigger: _Optional[str] = ..., attempt: _Optional[int] = ..., waiting_for_run_id: _Optional[str] = ..., waiting_for_trigger: _Optional[str] = ..., label_changes: _Optional[_Iterable[_Union[ClusterLabelChange, _Mapping]]] = ..., trigger_detail: _Optional[str] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class Drift(_message.Message):
    __slots__ = ("collection", "model_version", "previous_version", "recent_points", "psi_shares", "psi_versions", "centroid_shift_mean", "centroid_shift_max", "distance_p50_fit", "distance_p90_fit", "distance_p50_recent", "distance_p90_recent", "distance_ks", "anomaly_rate_fit", "anomaly_rate_recent", "candidates")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECENT_POINTS_FIELD_NUMBER: _ClassVar[int]
    PSI_SHARES_FIELD_NUMBER: _ClassVar[int]
    PSI_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CENTROID_SHIFT_MEAN_FIELD_NUMBER: _ClassVar[int]
    CENTROID_SHIFT_MAX_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_P50_FIT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_P90_FIT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_P50_RECENT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_P90_RECENT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_KS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_RATE_FIT_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_RATE_RECENT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    model_version: int
    previous_version: int
    recent_points: int
    psi_shares: float
    psi_versions: float
    centroid_shift_mean: float
    centroid_shift_max: float
    distance_p50_fit: float
    distance_p90_fit: float
    distance_p50_recent: float
    distance_p90_recent: float
    distance_ks: float
    anomaly_rate_fit: float
    anomaly_rate_recent: float
    candidates: _containers.RepeatedCompositeFieldContainer[DriftCandidate]
    def __init__(self, collection: _Optional[str] = ..., model_version: _Optional[int] = ..., previous_version: _Optional[int] = ..., recent_points: _Optional[int] = ..., psi_shares: _Optional[float] = ..., psi_versions: _Optional[float] = ..., centroid_shift_mean: _Optional[float] = ..., centroid_shift_max: _Optional[float] = ..., distance_p50_fit: _Optional[float] = ..., distance_p90_fit: _Optional[float] = ..., distance_p50_recent: _Optional[float] = ..., distance_p90_recent: _Optional[float] = ..., distance_ks: _Optional[float] = ..., anomaly_rate_fit: _Optional[float] = ..., anomaly_rate_recent: _Optional[float] = ..., candidates: _Optional[_Iterable[_Union[DriftCandidate, _Mapping]]] = ...) -> None: ...

class DriftCandidate(_message.Message):
    __slots__ = ("size", "nearest_ids", "mean_distance", "separation", "keywords")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NEAREST_IDS_FIELD_NUMBER: _ClassVar[int]
    MEAN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SEPARATION_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    size: int
    nearest_ids: _containers.RepeatedScalarFieldContainer[str]
    mean_distance: float
    separation: float
    keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, size: _Optional[int] = ..., nearest_ids: _Optional[_Iterable[str]] = ..., mean_distance: _Optional[float] = ..., separation: _Optional[float] = ..., keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class GetClusteringRunRequest(_message.Message):
    __slots__ = ("collection", "run_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    run_id: str
    def __init__(self, collection: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListClustersRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("version", "k", "served", "created_at", "cluster_ids", "params", "metrics", "anomaly", "summaries", "label_changes", "events")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_IDS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_FIELD_NUMBER: _ClassVar[int]
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_CHANGES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    version: int
    k: int
    served: bool
    created_at: str
    cluster_ids: _containers.RepeatedScalarFieldContainer[int]
    params: _struct_pb2.Struct
    metrics: _struct_pb2.Struct
    anomaly: AnomalyModel
    summaries: _containers.RepeatedCompositeFieldContainer[ClusterSummary]
    label_changes: _containers.RepeatedCompositeFieldContainer[ClusterLabelChange]
    events: _containers.RepeatedCompositeFieldContainer[ClusterEvent]
    def __init__(self, version: _Optional[int] = ..., k: _Optional[int] = ..., served: _Optional[bool] = ..., created_at: _Optional[str] = ..., cluster_ids: _Optional[_Iterable[int]] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., anomaly: _Optional[_Union[AnomalyModel, _Mapping]] = ..., summaries: _Optional[_Iterable[_Union[ClusterSummary, _Mapping]]] = ..., label_changes: _Optional[_Iterable[_Union[ClusterLabelChange, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[ClusterEvent, _Mapping]]] = ...) -> None: ...

class ClusterEvent(_message.Message):
    __slots__ = ("kind", "cluster_id", "related_ids", "size_before", "size_after", "share_before", "share_after", "model_version", "previous_version", "full_pass")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    RELATED_IDS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SIZE_AFTER_FIELD_NUMBER: _ClassVar[int]
    SHARE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SHARE_AFTER_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    FULL_PASS_FIELD_NUMBER: _ClassVar[int]
    kind: ClusterEventKind
    cluster_id: int
    related_ids: _containers.RepeatedScalarFieldContainer[int]
    size_before: int
    size_after: int
    share_before: float
    share_after: float
    model_version: int
    previous_version: int
    full_pass: bool
    def __init__(self, kind: _Optional[_Union[ClusterEventKind, str]] = ..., cluster_id: _Optional[int] = ..., related_ids: _Optional[_Iterable[int]] = ..., size_before: _Optional[int] = ..., size_after: _Optional[int] = ..., share_before: _Optional[float] = ..., share_after: _Optional[float] = ..., model_version: _Optional[int] = ..., previous_version: _Optional[int] = ..., full_pass: _Optional[bool] = ...) -> None: ...

class WatchClusterEventsRequest(_message.Message):
    __slots__ = ("collection", "since_version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    since_version: int
    def __init__(self, collection: _Optional[str] = ..., since_version: _Optional[int] = ...) -> None: ...

class AnomalyModel(_message.Message):
    __slots__ = ("scorer", "small_clusters", "small_share", "degenerate", "fits", "grouping")
    SCORER_FIELD_NUMBER: _ClassVar[int]
    SMALL_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    SMALL_SHARE_FIELD_NUMBER: _ClassVar[int]
    DEGENERATE_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
    GROUPING_FIELD_NUMBER: _ClassVar[int]
    scorer: str
    small_clusters: int
    small_share: float
    degenerate: bool
    fits: _containers.RepeatedCompositeFieldContainer[AnomalyFit]
    grouping: AnomalyFit
    def __init__(self, scorer: _Optional[str] = ..., small_clusters: _Optional[int] = ..., small_share: _Optional[float] = ..., degenerate: _Optional[bool] = ..., fits: _Optional[_Iterable[_Union[AnomalyFit, _Mapping]]] = ..., grouping: _Optional[_Union[AnomalyFit, _Mapping]] = ...) -> None: ...

class AnomalyFit(_message.Message):
    __slots__ = ("k", "small_clusters", "small_share")
    K_FIELD_NUMBER: _ClassVar[int]
    SMALL_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    SMALL_SHARE_FIELD_NUMBER: _ClassVar[int]
    k: int
    small_clusters: int
    small_share: float
    def __init__(self, k: _Optional[int] = ..., small_clusters: _Optional[int] = ..., small_share: _Optional[float] = ...) -> None: ...

class FieldContribution(_message.Message):
    __slots__ = ("field", "share", "distance")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    field: str
    share: float
    distance: float
    def __init__(self, field: _Optional[str] = ..., share: _Optional[float] = ..., distance: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("collection", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RollbackModelRequest(_message.Message):
    __slots__ = ("collection", "version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    version: int
    def __init__(self, collection: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("cluster_id", "size", "radius", "anomaly_count", "populated", "summary")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_COUNT_FIELD_NUMBER: _ClassVar[int]
    POPULATED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    size: int
    radius: float
    anomaly_count: int
    populated: bool
    summary: ClusterSummary
    def __init__(self, cluster_id: _Optional[int] = ..., size: _Optional[int] = ..., radius: _Optional[float] = ..., anomaly_count: _Optional[int] = ..., populated: _Optional[bool] = ..., summary: _Optional[_Union[ClusterSummary, _Mapping]] = ...) -> None: ...

class GetClusterRequest(_message.Message):
    __slots__ = ("collection", "cluster_id", "model_version")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    cluster_id: int
    model_version: int
    def __init__(self, collection: _Optional[str] = ..., cluster_id: _Optional[int] = ..., model_version: _Optional[int] = ...) -> None: ...

class ClusterSummary(_message.Message):
    __slots__ = ("cluster_id", "model_version", "kind", "size", "share", "radius", "anomaly_count", "label", "label_changed", "previous_label", "keywords", "fields", "representatives", "sample_size")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_CHANGED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_LABEL_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    REPRESENTATIVES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    model_version: int
    kind: SummaryKind
    size: int
    share: float
    radius: float
    anomaly_count: int
    label: str
    label_changed: bool
    previous_label: str
    keywords: _containers.RepeatedCompositeFieldContainer[SummaryKeyword]
    fields: _containers.RepeatedCompositeFieldContainer[SummaryField]
    representatives: _containers.RepeatedCompositeFieldContainer[SummaryRepresentative]
    sample_size: int
    def __init__(self, cluster_id: _Optional[int] = ..., model_version: _Optional[int] = ..., kind: _Optional[_Union[SummaryKind, str]] = ..., size: _Optional[int] = ..., share: _Optional[float] = ..., radius: _Optional[float] = ..., anomaly_count: _Optional[int] = ..., label: _Optional[str] = ..., label_changed: _Optional[bool] = ..., previous_label: _Optional[str] = ..., keywords: _Optional[_Iterable[_Union[SummaryKeyword, _Mapping]]] = ..., fields: _Optional[_Iterable[_Union[SummaryField, _Mapping]]] = ..., representatives: _Optional[_Iterable[_Union[SummaryRepresentative, _Mapping]]] = ..., sample_size: _Optional[int] = ...) -> None: ...

class SummaryKeyword(_message.Message):
    __slots__ = ("term", "score")
    TERM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    term: str
    score: float
    def __init__(self, term: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SummaryField(_message.Message):
    __slots__ = ("field", "kind", "text", "score", "median", "overall_median", "effect", "low", "high", "category", "share", "overall_share", "lift")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    OVERALL_MEDIAN_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    OVERALL_SHARE_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    field: str
    kind: str
    text: str
    score: float
    median: float
    overall_median: float
    effect: float
    low: float
    high: float
    category: str
    share: float
    overall_share: float
    lift: float
    def __init__(self, field: _Optional[str] = ..., kind: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., median: _Optional[float] = ..., overall_median: _Optional[float] = ..., effect: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., category: _Optional[str] = ..., share: _Optional[float] = ..., overall_share: _Optional[float] = ..., lift: _Optional[float] = ...) -> None: ...

class SummaryRepresentative(_message.Message):
    __slots__ = ("id", "text", "distance")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    distance: float
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., distance: _Optional[float] = ...) -> None: ...

class ClusterLabelChange(_message.Message):
    __slots__ = ("cluster_id", "old_label", "new_label", "similarity")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_LABEL_FIELD_NUMBER: _ClassVar[int]
    NEW_LABEL_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    old_label: str
    new_label: str
    similarity: float
    def __init__(self, cluster_id: _Optional[int] = ..., old_label: _Optional[str] = ..., new_label: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class ListClustersResponse(_message.Message):
    __slots__ = ("model_version", "clusters", "provisional", "point_count")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    model_version: int
    clusters: _containers.RepeatedCompositeFieldContainer[Cluster]
    provisional: bool
    point_count: int
    def __init__(self, model_version: _Optional[int] = ..., clusters: _Optional[_Iterable[_Union[Cluster, _Mapping]]] = ..., provisional: _Optional[bool] = ..., point_count: _Optional[int] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("collection", "items")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, collection: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "text", "vector", "image", "event", "limit", "cluster_id", "group_by_cluster", "ef", "exact")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    text: str
    vector: Vector
    image: ImageMetadata
    event: Event
    limit: int
    cluster_id: int
    group_by_cluster: ClusterGrouping
    ef: int
    exact: bool
    def __init__(self, collection: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., image: _Optional[_Union[ImageMetadata, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., limit: _Optional[int] = ..., cluster_id: _Optional[int] = ..., group_by_cluster: _Optional[_Union[ClusterGrouping, _Mapping]] = ..., ef: _Optional[int] = ..., exact: _Optional[bool] = ...) -> None: ...

class ClusterGrouping(_message.Message):
    __slots__ = ("groups", "group_size")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    groups: int
    group_size: int
    def __init__(self, groups: _Optional[int] = ..., group_size: _Optional[int] = ...) -> None: ...

class SearchGroup(_message.Message):
    __slots__ = ("cluster_id", "label", "hits")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    label: str
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, cluster_id: _Optional[int] = ..., label: _Optional[str] = ..., hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("point", "score")
    POINT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    point: Point
    score: float
    def __init__(self, point: _Optional[_Union[Point, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "groups")
    HITS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    groups: _containers.RepeatedCompositeFieldContainer[SearchGroup]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[SearchGroup, _Mapping]]] = ...) -> None: ...

class IngestStreamResponse(_message.Message):
    __slots__ = ("sequence", "results", "error_code", "error_message")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    error_code: str
    error_message: str
    def __init__(self, sequence: _Optional[int] = ..., results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class WatchAnomaliesRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ExplainPointRequest(_message.Message):
    __slots__ = ("collection", "id", "point_id", "neighbours")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    POINT_ID_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    id: str
    point_id: str
    neighbours: int
    def __init__(self, collection: _Optional[str] = ..., id: _Optional[str] = ..., point_id: _Optional[str] = ..., neighbours: _Optional[int] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("point", "model_version", "scorer", "cluster_id", "distance", "cluster_radius", "distance_in_radii", "reference_cluster_id", "reference_distance", "reference_radius", "anomaly_score", "threshold", "is_anomaly", "normal_neighbours", "anomaly_model", "field_contributions")
    POINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORER_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_RADIUS_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_IN_RADII_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_RADIUS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IS_ANOMALY_FIELD_NUMBER: _ClassVar[int]
    NORMAL_NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MODEL_FIELD_NUMBER: _ClassVar[int]
    FIELD_CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    point: Point
    model_version: int
    scorer: str
    cluster_id: int
    distance: float
    cluster_radius: float
    distance_in_radii: float
    reference_cluster_id: int
    reference_distance: float
    reference_radius: float
    anomaly_score: float
    threshold: float
    is_anomaly: bool
    normal_neighbours: _containers.RepeatedCompositeFieldContainer[SearchHit]
    anomaly_model: AnomalyModel
    field_contributions: _containers.RepeatedCompositeFieldContainer[FieldContribution]
    def __init__(self, point: _Optional[_Union[Point, _Mapping]] = ..., model_version: _Optional[int] = ..., scorer: _Optional[str] = ..., cluster_id: _Optional[int] = ..., distance: _Optional[float] = ..., cluster_radius: _Optional[float] = ..., distance_in_radii: _Optional[float] = ..., reference_cluster_id: _Optional[int] = ..., reference_distance: _Optional[float] = ..., reference_radius: _Optional[float] = ..., anomaly_score: _Optional[float] = ..., threshold: _Optional[float] = ..., is_anomaly: _Optional[bool] = ..., normal_neighbours: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., anomaly_model: _Optional[_Union[AnomalyModel, _Mapping]] = ..., field_contributions: _Optional[_Iterable[_Union[FieldContribution, _Mapping]]] = ...) -> None: ...

class ExportCollectionRequest(_message.Message):
    __slots__ = ("collection", "path", "overwrite")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    path: str
    overwrite: bool
    def __init__(self, collection: _Optional[str] = ..., path: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ImportCollectionRequest(_message.Message):
    __slots__ = ("path", "name")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SnapshotSummary(_message.Message):
    __slots__ = ("collection", "source_collection", "path", "points", "models", "bytes", "sha256", "served_model_version", "seconds")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SERVED_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    source_collection: str
    path: str
    points: int
    models: int
    bytes: int
    sha256: str
    served_model_version: int
    seconds: float
    def __init__(self, collection: _Optional[str] = ..., source_collection: _Optional[str] = ..., path: _Optional[str] = ..., points: _Optional[int] = ..., models: _Optional[int] = ..., bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., served_model_version: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("collection", "sample_size")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    sample_size: int
    def __init__(self, collection: _Optional[str] = ..., sample_size: _Optional[int] = ...) -> None: ...

class CollectionReport(_message.Message):
    __slots__ = ("collection", "model_version", "html", "points_drawn", "point_count", "anomalies_drawn", "clusters", "labelled_clusters", "versions", "k_curves", "summaries", "generated_at", "seconds")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HTML_FIELD_NUMBER: _ClassVar[int]
    POINTS_DRAWN_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ANOMALIES_DRAWN_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    LABELLED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    K_CURVES_FIELD_NUMBER: _ClassVar[int]
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    model_version: int
    html: bytes
    points_drawn: int
    point_count: int
    anomalies_drawn: int
    clusters: int
    labelled_clusters: int
    versions: int
    k_curves: bool
    summaries: bool
    generated_at: str
    seconds: float
    def __init__(self, collection: _Optional[str] = ..., model_version: _Optional[int] = ..., html: _Optional[bytes] = ..., points_drawn: _Optional[int] = ..., point_count: _Optional[int] = ..., anomalies_drawn: _Optional[int] = ..., clusters: _Optional[int] = ..., labelled_clusters: _Optional[int] = ..., versions: _Optional[int] = ..., k_curves: _Optional[bool] = ..., summaries: _Optional[bool] = ..., generated_at: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...
