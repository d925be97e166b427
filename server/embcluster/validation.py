"""Validation at the core's boundary: every message names the offending value or item.

Internal code assumes what passes here is valid. Modelled on scikit-learn's
``_check_params_vs_input``: check against the actual data, say what was expected.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Sequence

import numpy as np

from .anomaly.scoring import SCORERS
from .anomaly.threshold import MODES
from .config import Settings
from .errors import FailedPrecondition, InvalidArgument
from .schema import CollectionSettings, CollectionSpec, InputKind, ItemInput, RunRequest

__all__ = [
    "NAME_RE",
    "check_name",
    "check_spec",
    "check_settings",
    "check_effective_settings",
    "check_items",
    "check_query",
    "check_run_request",
    "check_page_size",
]

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DIM = 65_536
MAX_K = 10_000
MAX_K_RANGE = 32


def check_name(name: str) -> str:
    """A collection name usable as a directory name."""
    if not NAME_RE.match(name or ""):
        raise InvalidArgument(f"collection name {name!r} must match [A-Za-z0-9_-]{{1,64}}")
    return name


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
        raise InvalidArgument(f"anomaly_scorer must be one of {', '.join(SCORERS)}, got {settings.anomaly_scorer!r}")
    if settings.threshold_mode is not None and settings.threshold_mode not in MODES:
        raise InvalidArgument(f"threshold_mode must be one of {', '.join(MODES)}, got {settings.threshold_mode!r}")
    if settings.anomaly_threshold is not None and not (math.isfinite(settings.anomaly_threshold)
                                                       and settings.anomaly_threshold >= 0):
        raise InvalidArgument(f"anomaly_threshold must be a finite score >= 0, got {settings.anomaly_threshold}")
    return settings


def check_effective_settings(settings: CollectionSettings) -> CollectionSettings:
    """Settings after merging: the absolute mode needs its threshold."""
    if settings.threshold_mode == "absolute" and settings.anomaly_threshold is None:
        raise InvalidArgument("threshold_mode 'absolute' needs anomaly_threshold (a score, e.g. 3.0 radii for cblof)")
    return settings


def check_spec(spec: CollectionSpec) -> CollectionSpec:
    """A creatable collection."""
    check_name(spec.name)
    if spec.input_kind not in ("text", "vector"):
        raise InvalidArgument(f"input_kind must be text or vector, got {spec.input_kind!r}")
    if spec.metric not in ("cosine", "euclid"):
        raise InvalidArgument(f"distance must be cosine or euclid, got {spec.metric!r}")
    if spec.input_kind == "vector":
        if not (1 <= spec.vector_dim <= MAX_DIM):
            raise InvalidArgument(f"vector_dim must be in [1, {MAX_DIM}] for a VECTOR collection, got {spec.vector_dim}")
        if spec.embedding_model:
            raise InvalidArgument(f"a VECTOR collection takes no embedding_model, got {spec.embedding_model!r}")
    elif spec.vector_dim:
        raise InvalidArgument(f"a TEXT collection's dimension comes from its model; vector_dim must be 0, got {spec.vector_dim}")
    check_settings(spec.settings)
    return spec


def _vector_value_errors(items: Sequence[ItemInput], dim: int, cosine: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Stack the well-shaped vectors once and find bad values vectorised.

    Returns the float32 matrix (rows of ill-shaped vectors are zero; the caller raises on
    those first) and the value error message of each bad row, by item index.
    """
    shaped = [it.vector is not None and len(it.vector) == dim for it in items]
    mat = np.zeros((len(items), dim), dtype=np.float64)
    ok = np.flatnonzero(shaped)
    if len(ok):
        mat[ok] = np.asarray([items[int(i)].vector for i in ok], dtype=np.float64).reshape(len(ok), dim)
    errors: dict[int, str] = {}
    out = mat.astype(np.float32)
    for i, j in np.argwhere(~np.isfinite(mat))[::-1]:
        errors[int(i)] = f"vector value [{j}] is {mat[i, j]}; values must be finite"
    for i, j in np.argwhere(np.isfinite(mat) & ~np.isfinite(out))[::-1]:  # overflows float32
        errors.setdefault(int(i), f"vector value [{j}] is {mat[i, j]}, outside the float32 range")
    if cosine:
        for i in np.flatnonzero(~mat.any(axis=1) & np.asarray(shaped, dtype=bool)):
            errors.setdefault(int(i), "an all-zero vector has no direction under cosine distance")
    return out, errors


def check_items(
    items: Sequence[ItemInput], *, kind: InputKind, dim: int, settings: Settings, cosine: bool = False,
    with_ids: bool = True,
) -> np.ndarray | None:
    """Every item of an Ingest/Classify batch; the first bad one is reported by index.

    Returns the batch's vectors as one float32 matrix for VECTOR collections (parsed once,
    here), None for text.
    """
    if not items:
        raise InvalidArgument("no items: send at least one")
    if len(items) > settings.max_batch_items:
        raise InvalidArgument(f"{len(items)} items in one call; the limit is {settings.max_batch_items}")
    matrix, value_errors = _vector_value_errors(items, dim, cosine) if kind == "vector" else (None, {})
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"item {i}"
        if with_ids and item.id:
            if len(item.id) > 256:
                raise InvalidArgument(f"{where}: id is {len(item.id)} characters; the limit is 256")
            if item.id in seen:
                raise InvalidArgument(f"{where}: id {item.id!r} repeats item {seen[item.id]}")
            seen[item.id] = i
        if kind == "text":
            if item.vector is not None:
                raise InvalidArgument(f"{where}: this collection takes text, got a vector")
            if item.text is None or not item.text.strip():
                raise InvalidArgument(f"{where}: text is empty")
            if len(item.text) > settings.max_text_chars:
                raise InvalidArgument(
                    f"{where}: text is {len(item.text)} characters; the limit is {settings.max_text_chars}"
                )
        else:
            if item.text is not None:
                raise InvalidArgument(f"{where}: this collection takes vectors, got text")
            if item.vector is None:
                raise InvalidArgument(f"{where}: vector is missing")
            if len(item.vector) != dim:
                raise InvalidArgument(f"{where}: vector has dimension {len(item.vector)}, expected {dim}")
            if i in value_errors:
                raise InvalidArgument(f"{where}: {value_errors[i]}")
        if item.metadata is not None:
            _check_metadata(where, item.metadata, settings.max_metadata_bytes)
    return matrix


def _check_metadata(where: str, metadata: dict[str, Any], limit: int) -> None:
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (ValueError, TypeError) as exc:  # NaN/inf, or a value JSON cannot hold
        raise InvalidArgument(f"{where}: metadata must be JSON with finite numbers ({exc})") from exc
    if len(encoded.encode()) > limit:
        raise InvalidArgument(f"{where}: metadata is {len(encoded.encode())} bytes as JSON; the limit is {limit}")


def check_query(
    text: str | None, vector: Sequence[float] | None, *, kind: InputKind, dim: int, settings: Settings, cosine: bool
) -> np.ndarray | None:
    """A search query of the collection's kind (returns the vector as a 1 x dim matrix)."""
    return check_items([ItemInput(text=text, vector=vector)], kind=kind, dim=dim, settings=settings,
                       cosine=cosine, with_ids=False)


def check_page_size(page_size: int) -> int:
    """0 means the default (100); at most 1000."""
    if page_size == 0:
        return 100
    if not (1 <= page_size <= 1000):
        raise InvalidArgument(f"page_size must be in [1, 1000], got {page_size}")
    return page_size


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
    return RunRequest(k=k, k_range=None, seed=req.seed, sample_size=req.sample_size, n_init=req.n_init)
