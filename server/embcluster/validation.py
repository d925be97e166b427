"""Validation at the core's boundary: every message names the offending value or item.

Collections, settings, schedules and run requests here; the items of a call and search queries
in :mod:`embcluster.validation_items`. Internal code assumes what passes here is valid. Modelled on scikit-learn's
``_check_params_vs_input``: check against the actual data, say what was expected.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .anomaly.scoring import SCORERS
from .anomaly.threshold import MODES
from .embed.long_text import LONG_TEXT_MODES
from .embed.tiers import DEFAULT_TIER, TIERS
from .errors import FailedPrecondition, InvalidArgument, shown
from .store.base import VectorIndexSettings
from .schema import (
    IMAGE_TEXT_FIELDS,
    AttachSpec,
    CollectionSettings,
    CollectionSpec,
    ImageMetadataSpec,
    RunRequest,
    Schedule,
)

__all__ = [
    "NAME_RE",
    "check_name",
    "check_run_id",
    "check_json_shape",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_KEYS",
    "check_spec",
    "check_attach_spec",
    "check_settings",
    "check_schedule",
    "check_effective_settings",
    "check_run_request",
    "check_image_spec",
]

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # always fullmatch: "$" would let a trailing newline through
RUN_ID_RE = re.compile(r"[A-Za-z0-9]{1,64}")
# Metadata (and image attributes) a client can always read back: protobuf parsers stop at 100 nested
# messages and each level of a Struct costs about three (Struct, map entry, Value), so depth 16
# stays far below it wherever a Point is nested in a response.
MAX_METADATA_DEPTH = 16
MAX_METADATA_KEYS = 1000  # keys and list items, all levels together
MAX_DIM = 65_536
MAX_K = 10_000
MAX_K_RANGE = 32
MIN_SCHEDULE_INTERVAL_S = 1.0
MAX_SCHEDULE_INTERVAL_S = 366 * 86_400.0
MAX_DRIFT_PSI = 100.0
MAX_ANOMALY_RATIO = 1000.0


def check_name(name: str) -> str:
    """A collection name usable as a directory name."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument(f"collection name {shown(name)} must match [A-Za-z0-9_-]{{1,64}}")
    return name


def check_run_id(run_id: str) -> str:
    """A run id as the server makes them (16 hex digits; at most 64 letters or digits): a file name."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise InvalidArgument(f"run_id {shown(run_id)} must be 1-64 letters or digits (as StartClustering returns it)")
    return run_id


def check_json_shape(where: str, value: Any, *, max_depth: int = MAX_METADATA_DEPTH,
                     max_keys: int = MAX_METADATA_KEYS) -> None:
    """Nesting depth and number of keys of a JSON value (iterative: any depth is safe to check)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    keys = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, (list, tuple)):
            children = list(node)
        else:
            continue
        if depth > max_depth:
            raise InvalidArgument(f"{where} is nested more than {max_depth} levels deep; the limit is {max_depth}")
        keys += len(children)
        if keys > max_keys:
            raise InvalidArgument(f"{where} has more than {max_keys} keys and list items; the limit is {max_keys}")
        stack.extend((child, depth + 1) for child in children)


# The HNSW knobs' bounds: (low, high) inclusive. Outside them a build takes hours, a graph gigabytes,
# or the index stops paying off.
VECTOR_INDEX_BOUNDS = {"m": (4, 100), "ef_construct": (16, 1000), "ef": (10, 10_000),
                       "min_points": (1_000, 1 << 40)}
QUANTIZATIONS = ("none", "int8")


def check_vector_index(index: VectorIndexSettings) -> VectorIndexSettings:
    """HNSW settings within :data:`VECTOR_INDEX_BOUNDS` (the message names the field and the value)."""
    for name, (low, high) in VECTOR_INDEX_BOUNDS.items():
        value = getattr(index, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidArgument(f"vector_index.{name} must be an integer in [{low}, {high}], got {shown(value)}")
    if index.quantization not in QUANTIZATIONS:
        raise InvalidArgument(f"vector_index.quantization must be one of {', '.join(QUANTIZATIONS)}, "
                              f"got {shown(index.quantization)}")
    return index


def check_settings(settings: CollectionSettings) -> CollectionSettings:
    """Range-check the settings that are set."""
    if settings.contamination is not None and not (0.0 < settings.contamination <= 0.5):
        raise InvalidArgument(f"contamination must be in (0, 0.5], got {settings.contamination}")
    if settings.min_cluster_size is not None and settings.min_cluster_size < 1:
        raise InvalidArgument(f"min_cluster_size must be >= 1, got {settings.min_cluster_size}")
    if settings.default_k is not None and not (2 <= settings.default_k <= MAX_K):
        raise InvalidArgument(f"default_k must be in [2, {MAX_K}], got {settings.default_k}")
    if settings.seed is not None and not (0 <= settings.seed < 2**63):
        raise InvalidArgument(f"seed must be in [0, 2^63), got {settings.seed}")
    if settings.anomaly_scorer is not None and settings.anomaly_scorer not in SCORERS:
        raise InvalidArgument(f"anomaly_scorer must be one of {', '.join(SCORERS)}, got {shown(settings.anomaly_scorer)}")
    if settings.threshold_mode is not None and settings.threshold_mode not in MODES:
        raise InvalidArgument(f"threshold_mode must be one of {', '.join(MODES)}, got {shown(settings.threshold_mode)}")
    if settings.anomaly_threshold is not None and not (math.isfinite(settings.anomaly_threshold)
                                                       and settings.anomaly_threshold >= 0):
        raise InvalidArgument(f"anomaly_threshold must be a finite score >= 0, got {settings.anomaly_threshold}")
    if settings.schedule is not None:
        check_schedule(settings.schedule)
    if settings.long_text is not None and settings.long_text not in LONG_TEXT_MODES:
        raise InvalidArgument(f"long_text must be one of {', '.join(LONG_TEXT_MODES)}, got {shown(settings.long_text)}")
    return settings


def check_schedule(schedule: Schedule) -> Schedule:
    """Each trigger that is set must be a usable value (an unset trigger is off)."""
    iv = schedule.interval_s
    if iv is not None and not (math.isfinite(iv) and MIN_SCHEDULE_INTERVAL_S <= iv <= MAX_SCHEDULE_INTERVAL_S):
        raise InvalidArgument(f"schedule interval_s must be in [{MIN_SCHEDULE_INTERVAL_S:g}, "
                              f"{MAX_SCHEDULE_INTERVAL_S:,.0f}] seconds, got {iv} (leave it unset for no interval)")
    if schedule.after_changes is not None and schedule.after_changes < 1:
        raise InvalidArgument(f"schedule after_changes must be >= 1 point, got {schedule.after_changes} "
                              "(leave it unset for no change trigger)")
    psi = schedule.drift_psi
    if psi is not None and not (math.isfinite(psi) and 0.0 < psi <= MAX_DRIFT_PSI):
        raise InvalidArgument(f"schedule drift_psi must be in (0, {MAX_DRIFT_PSI:g}], got {psi} "
                              "(leave it unset for no drift trigger)")
    if schedule.k is not None and not (2 <= schedule.k <= MAX_K):
        raise InvalidArgument(f"schedule k must be in [2, {MAX_K}], got {schedule.k} (unset = default_k)")
    ks = schedule.drift_ks
    if ks is not None and not (math.isfinite(ks) and 0.0 < ks < 1.0):
        raise InvalidArgument(f"schedule drift_ks must be in (0, 1), got {ks} (leave it unset for no KS trigger)")
    ratio = schedule.anomaly_ratio
    if ratio is not None and not (math.isfinite(ratio) and 1.0 < ratio <= MAX_ANOMALY_RATIO):
        raise InvalidArgument(f"schedule anomaly_ratio must be in (1, {MAX_ANOMALY_RATIO:g}] (times the fit's anomaly "
                              f"rate), got {ratio} (leave it unset for no anomaly-ratio trigger)")
    rate = schedule.anomaly_rate
    if rate is not None and not (math.isfinite(rate) and 0.0 < rate < 1.0):
        raise InvalidArgument(f"schedule anomaly_rate must be in (0, 1) (a share of the recent points), got {rate} "
                              "(leave it unset for no anomaly-rate trigger)")
    if schedule.k_max is not None:
        low = schedule.k or 2
        if not (low < schedule.k_max <= MAX_K):
            raise InvalidArgument(f"schedule k_max must be in ({low}, {MAX_K}], got {schedule.k_max} "
                                  f"({'above the schedule k' if schedule.k else 'above 2'}; leave it unset to keep "
                                  "k fixed)")
    return schedule


def check_effective_settings(settings: CollectionSettings) -> CollectionSettings:
    """Settings after merging: the absolute mode needs its threshold; a schedule's k_max is above the k it starts from."""
    if settings.threshold_mode == "absolute" and settings.anomaly_threshold is None:
        raise InvalidArgument("threshold_mode 'absolute' needs anomaly_threshold (a score in the scorer's units, e.g. "
                              "3.0 for ensemble: three median-to-90th-percentile spreads above the median)")
    schedule, default_k = settings.schedule, settings.default_k
    if schedule is not None and schedule.k_max is not None and schedule.k is None and default_k is not None \
            and schedule.k_max <= default_k:
        raise InvalidArgument(f"schedule k_max must be above the k its runs start from (the schedule has no k, so "
                              f"default_k={default_k}), got k_max={schedule.k_max}; set the schedule's k or a larger k_max")
    return settings


def check_spec(spec: CollectionSpec) -> CollectionSpec:
    """A creatable collection."""
    check_name(spec.name)
    if spec.input_kind not in ("text", "vector", "image_metadata", "event"):
        raise InvalidArgument(f"input_kind must be text, vector, image_metadata or event, got {shown(spec.input_kind)}")
    if (spec.event_schema is not None) != (spec.input_kind == "event"):
        raise InvalidArgument("an EVENT collection needs an event_schema, and only EVENT collections take one "
                              f"(input_kind {shown(spec.input_kind)})")
    if spec.input_kind == "event" and not spec.store_source:
        raise InvalidArgument("an EVENT collection needs store_source=true: its featurizer is fitted and refitted "
                              "from the raw fields kept in each point's source")
    if spec.image_spec is not None:
        if spec.input_kind != "image_metadata":
            raise InvalidArgument(f"an image_metadata spec needs input_kind image_metadata, got {shown(spec.input_kind)}")
        check_image_spec(spec.image_spec)
    if spec.metric not in ("cosine", "euclid"):
        raise InvalidArgument(f"distance must be cosine or euclid, got {shown(spec.metric)}")
    if spec.embedding_tier not in TIERS:
        raise InvalidArgument(f"unknown embedding_tier {shown(spec.embedding_tier)}; tiers: {', '.join(TIERS)}")
    if spec.embedding_tier == "model_dir" and not spec.embedding_model:
        raise InvalidArgument("embedding_tier 'model_dir' needs the model's directory in embedding_model")
    if spec.input_kind == "vector":
        if not (1 <= spec.vector_dim <= MAX_DIM):
            raise InvalidArgument(f"vector_dim must be in [1, {MAX_DIM}] for a VECTOR collection, got {spec.vector_dim}")
        if spec.embedding_model:
            raise InvalidArgument(f"a VECTOR collection takes no embedding_model, got {shown(spec.embedding_model)}")
        if spec.embedding_tier != DEFAULT_TIER:
            raise InvalidArgument(f"a VECTOR collection embeds nothing: it takes no embedding_tier, got "
                                  f"{shown(spec.embedding_tier)}")
    elif spec.input_kind == "event" and spec.vector_dim:
        raise InvalidArgument(f"an EVENT collection's dimension comes from its schema; "
                              f"vector_dim must be 0, got {spec.vector_dim}")
    elif not (0 <= spec.vector_dim <= MAX_DIM):  # TEXT, IMAGE_METADATA: the dimension the model must have
        raise InvalidArgument(f"vector_dim must be 0 (the model's) or in [1, {MAX_DIM}], got {spec.vector_dim}")
    check_settings(spec.settings)
    if spec.vector_index is not None:
        check_vector_index(spec.vector_index)
    if spec.settings.long_text == "pool" and spec.input_kind not in ("text", "image_metadata"):
        raise InvalidArgument(f"long_text 'pool' applies to TEXT and IMAGE_METADATA collections, not "
                              f"{spec.input_kind.upper()} (leave it unset)")
    return spec


def check_run_request(req: RunRequest, *, point_count: int, default_k: int) -> RunRequest:
    """k or a k range that the collection's points can support."""
    if point_count == 0:
        raise FailedPrecondition("the collection is empty: ingest points before clustering")
    if req.k is not None and req.k_range is not None:
        raise InvalidArgument("give k or k_range, not both")
    if req.n_init < 0 or req.n_init > 100:
        raise InvalidArgument(f"n_init must be in [0, 100], got {req.n_init}")
    if req.sample_size < 0:
        raise InvalidArgument(f"sample_size must be >= 0, got {req.sample_size}")
    if req.k_range is not None:
        lo, hi = req.k_range
        if lo < 2 or hi < lo:
            raise InvalidArgument(f"k_range must satisfy 2 <= min <= max, got [{lo}, {hi}]")
        if hi - lo + 1 > MAX_K_RANGE:
            raise InvalidArgument(f"k_range [{lo}, {hi}] has {hi - lo + 1} candidates; at most {MAX_K_RANGE}")
        if hi > point_count:
            raise InvalidArgument(f"k_range max {hi} exceeds the collection's {point_count} points")
        if req.sample_size and hi > req.sample_size:
            raise InvalidArgument(f"k_range max {hi} exceeds sample_size {req.sample_size}")
        return req
    k = req.k if req.k is not None else default_k
    if k < 2:
        raise InvalidArgument(f"k must be >= 2, got {k}")
    if k > MAX_K:
        raise InvalidArgument(f"k must be <= {MAX_K}, got {k}")
    if k > point_count:
        raise InvalidArgument(f"k={k} exceeds the collection's {point_count} points")
    if req.sample_size and k > req.sample_size:
        raise InvalidArgument(f"k={k} exceeds sample_size {req.sample_size}")
    # grow_to below k: nothing to add (the scheduler's k_max is validated with the schedule).
    return RunRequest(k=k, k_range=None, seed=req.seed, sample_size=req.sample_size, n_init=req.n_init,
                      grow_to=req.grow_to if req.grow_to > k else 0)


MAX_IMAGE_ATTRIBUTES = 64  # keys listed in one spec (text or numeric)


def check_image_spec(spec: ImageMetadataSpec) -> ImageMetadataSpec:
    """An IMAGE_METADATA collection's choice of fields: known text fields, sane numeric ranges."""
    for name in spec.text_fields:
        if name not in IMAGE_TEXT_FIELDS:
            raise InvalidArgument(f"image_metadata.text_fields: unknown field {shown(name)}; "
                                  f"choose from {', '.join(IMAGE_TEXT_FIELDS)}")
    if len(set(spec.text_fields)) != len(spec.text_fields):
        raise InvalidArgument(f"image_metadata.text_fields repeats a field: {spec.text_fields}")
    if not spec.text_fields and not spec.text_attributes:
        raise InvalidArgument("image_metadata: choose at least one text field or text attribute "
                              "(the rendering embedded with the text model)")
    numeric_keys = [a.key for a in spec.numeric_attributes]
    for what, keys in (("text_attributes", spec.text_attributes), ("numeric_attributes", numeric_keys)):
        if len(keys) > MAX_IMAGE_ATTRIBUTES:
            raise InvalidArgument(f"image_metadata.{what}: {len(keys)} keys; the limit is {MAX_IMAGE_ATTRIBUTES}")
        for key in keys:
            if not key or len(key) > 128:
                raise InvalidArgument(f"image_metadata.{what}: key {shown(key)} must be 1-128 characters")
        if len(set(keys)) != len(keys):
            raise InvalidArgument(f"image_metadata.{what} repeats a key: {keys}")
    for i, attr in enumerate(spec.numeric_attributes):
        where = f"image_metadata.numeric_attributes[{i}] ({shown(attr.key)})"
        numbers = {"low": attr.low, "high": attr.high, "weight": attr.weight}
        if attr.default_value is not None:
            numbers["default_value"] = attr.default_value
        for name, value in numbers.items():
            if not math.isfinite(value):
                raise InvalidArgument(f"{where}: {name} must be finite, got {value}")
        if not attr.high > attr.low:
            raise InvalidArgument(f"{where}: high must be > low, got low={attr.low}, high={attr.high}")
        if not 0 < attr.weight <= 100:
            raise InvalidArgument(f"{where}: weight must be in (0, 100], got {attr.weight}")
        if attr.log and attr.low < 0:
            raise InvalidArgument(f"{where}: log scaling needs low >= 0, got {attr.low}")
        if attr.log and attr.default_value is not None and attr.default_value < 0:
            raise InvalidArgument(f"{where}: log scaling needs default_value >= 0, got {attr.default_value}")
    return spec


FIELD_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
QDRANT_NAME_RE = re.compile(r"[^/\\\x00\n]{1,255}")


def check_attach_spec(spec: AttachSpec) -> AttachSpec:
    """An attachable Qdrant collection: names and prefix well formed (existence is checked by the store)."""
    check_name(spec.name)
    if not QDRANT_NAME_RE.fullmatch(spec.qdrant_collection or ""):
        raise InvalidArgument(f"qdrant_collection {shown(spec.qdrant_collection)} is not a Qdrant collection name "
                              "(1-255 characters, no '/', '\\' or NUL)")
    if spec.vector_name and not QDRANT_NAME_RE.fullmatch(spec.vector_name):
        raise InvalidArgument(f"vector_name {shown(spec.vector_name)} is not a Qdrant vector name")
    if spec.field_prefix and not FIELD_PREFIX_RE.fullmatch(spec.field_prefix):
        raise InvalidArgument(f"field_prefix {shown(spec.field_prefix)} must match [A-Za-z_][A-Za-z0-9_]{{0,31}} "
                              "(e.g. 'ec_')")
    if spec.metric is not None and spec.metric not in ("cosine", "euclid"):
        raise InvalidArgument(f"distance must be cosine or euclid (or unset = the collection's), got {shown(spec.metric)}")
    check_settings(spec.settings)
    if spec.settings.long_text == "pool":
        raise InvalidArgument("long_text 'pool' applies to TEXT and IMAGE_METADATA collections; an attached "
                              "collection holds its own vectors (leave it unset)")
    return spec
