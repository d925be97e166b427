"""EVENT clusters: the fields that set a cluster apart from the rest of the collection.

Each cluster is compared with **the rest of the sample** (its complement), field by field, and
every finding has one score on one scale: the two-sample **Kolmogorov-Smirnov distance** between
the cluster and the rest, in [0, 1] (0 = same distribution, 1 = no overlap at all):

* **numeric** — KS of the field's values; it sees a shift ("amount high") as well as a
  concentration ("age 40–45" inside a wide spread). The text says ``"amount high"`` /
  ``"amount low"`` when the shift explains the difference (the Mann-Whitney separation
  ``|2 AUC - 1|`` is at least half the KS distance; ``AUC`` = probability that a member's value
  exceeds another point's, ties half), else the cluster's 10th-90th percentile range when it is
  narrow (at most ``narrow_band`` of the collection's), else ``"amount varied"``. Reported with
  the cluster median, the collection median and a robust effect ``(median_c - median_all) /
  IQR_all`` (the standard deviation when the IQR is 0).
* **categorical** — categories over-represented in the cluster: ``lift = share in cluster /
  share overall >= min_lift``, held by at least ``min_support`` of the members and ``min_count``
  of them; the score is ``share in cluster - share in the rest`` (the KS distance of the
  category's indicator; 1 = the category is exactly this cluster). Text ``"country=BR"``.
* **timestamp** — its epoch value as a numeric field ("ts late" / "ts early"), plus two derived
  categorical fields: the hour band of the day (``"ts hour 0–5"``, UTC, 6-hour bands) and the
  weekday (``"ts weekday=Sat"``).
* **text** fields are not summarised here (the keywords of text collections cover texts).

A finding is kept when its score is at least ``min_separation`` and significant at level
``alpha`` (the KS test's critical distance for the two sizes; a two-proportion z-test for a
category), so small clusters do not "find" noise; a cluster's findings are
ranked by score and its label is made from the top three (``"amount high, ts hour 0–5,
country=BR"``). Entity profiles (``source.profile``) are flattened first: ``events`` (count),
``<field> mean`` per numeric field, the dominant category per categorical field, and the hour band
and weekday of the entity's busiest hour and day.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from ..embed.event_schema import DAY, EventSchema

__all__ = ["FieldKind", "Column", "FieldFinding", "EventSummaryConfig", "EventTable", "fields_of", "event_table",
           "field_findings",
           "event_text", "HOUR_BANDS", "WEEKDAYS"]

FieldKind = Literal["numeric", "categorical"]
HOUR_BANDS = ("0–5", "6–11", "12–17", "18–23")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


@dataclass(frozen=True)
class Column:
    """One summarised column of the event table.

    Attributes:
        name: Column name (a schema field, or a derived one such as ``"ts hour"``).
        kind: numeric or categorical.
        high, low: Words of a numeric column's direction ("high"/"low"; "late"/"early" for time).
        joiner: Between name and category in a categorical finding ("=": ``country=BR``; " ": ``ts hour 0–5``).
    """

    name: str
    kind: FieldKind
    high: str = "high"
    low: str = "low"
    joiner: str = "="


@dataclass(frozen=True)
class FieldFinding:
    """What sets a cluster apart on one field (see the module doc for the scores).

    Numeric findings fill ``median``, ``overall_median``, ``effect``, ``low``, ``high``;
    categorical ones ``category``, ``share``, ``overall_share``, ``lift``.
    """

    field: str
    kind: FieldKind
    text: str
    score: float
    median: float | None = None
    overall_median: float | None = None
    effect: float | None = None
    low: float | None = None
    high: float | None = None
    category: str | None = None
    share: float | None = None
    overall_share: float | None = None
    lift: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain dict without the fields that do not apply (floats rounded to 6 significant digits)."""
        return {k: _round(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FieldFinding":
        """Inverse of :meth:`to_json`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _round(v: Any) -> Any:
    return float(f"{v:.6g}") if isinstance(v, float) else v


@dataclass(frozen=True)
class EventSummaryConfig:
    """Thresholds of the field findings (see the module doc)."""

    max_findings: int = 5
    min_separation: float = 0.2
    alpha: float = 0.01
    min_lift: float = 1.5
    min_support: float = 0.1
    min_count: int = 3
    max_categories_per_field: int = 2
    narrow_band: float = 0.5


def fields_of(schema: EventSchema) -> dict[str, str]:
    """Field name -> type of an event schema (the profile's entity key left out)."""
    return {f.name: f.type for f in schema.fields if f.name != schema.entity_key}


@dataclass
class EventTable:
    """The summarised columns of a sample of events, column-wise.

    Attributes:
        columns: The columns, in schema order (derived ones after their field).
        values: Column name -> one value per point: float64 with NaN for a missing number, or an
            object array of strings with None for a missing category.
    """

    columns: list[Column]
    values: dict[str, np.ndarray]


def _known(values: np.ndarray) -> np.ndarray:
    """Where a column has a value: not NaN (numbers) or not None (categories)."""
    if values.dtype == object:
        return np.fromiter((v is not None for v in values.tolist()), dtype=bool, count=len(values))
    known: np.ndarray = ~np.isnan(values)
    return known


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _numbers(events: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """One field of every event as float64, NaN where missing or not a number."""
    try:  # parsed events hold floats (or nothing) for numeric and timestamp fields: the fast path
        return np.fromiter((e.get(name, math.nan) for e in events), dtype=np.float64, count=len(events))
    except (TypeError, ValueError):
        return np.fromiter((_number(e.get(name)) for e in events), dtype=np.float64, count=len(events))


def _category(v: Any) -> str | None:
    return None if v is None else str(v)


def _time_bands(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour band and weekday (UTC) of epoch seconds, None where NaN."""
    ok = ~np.isnan(ts)
    hours = np.full(len(ts), None, dtype=object)
    days = np.full(len(ts), None, dtype=object)
    hours[ok] = np.asarray(HOUR_BANDS, dtype=object)[((ts[ok] % DAY) // 3600).astype(np.int64) // 6]
    days[ok] = np.asarray(WEEKDAYS, dtype=object)[((ts[ok] // DAY + _EPOCH_WEEKDAY) % 7).astype(np.int64)]
    return hours, days


def event_table(sources: Sequence[Mapping[str, Any] | None], fields: Mapping[str, str]) -> EventTable:
    """The columns to summarise from points' EVENT sources (``{"event": ...}``, a profile, or the event itself).

    Args:
        sources: Each point's ``source`` payload; None = nothing known about the point.
        fields: Field name -> schema type (:func:`fields_of`).

    Returns:
        The table; a column none of the sources has is left out.
    """
    if any(src and "profile" in src for src in sources):
        return _profile_table([src.get("profile") if src else None for src in sources], fields)
    events = [src.get("event", src) if src else {} for src in sources]
    columns: list[Column] = []
    values: dict[str, np.ndarray] = {}

    def add(col: Column, arr: np.ndarray) -> None:
        if _known(arr).any():
            columns.append(col)
            values[col.name] = arr

    for name, ftype in fields.items():
        if ftype in ("numeric", "timestamp"):
            arr = _numbers(events, name)
            add(Column(name, "numeric", *(("late", "early") if ftype == "timestamp" else ())), arr)
            if ftype == "timestamp":
                hours, days = _time_bands(arr)
                add(Column(f"{name} hour", "categorical", joiner=" "), hours)
                add(Column(f"{name} weekday", "categorical"), days)
        elif ftype == "categorical":
            add(Column(name, "categorical"), np.array([_category(e.get(name)) for e in events], dtype=object))
    return EventTable(columns, values)


def _profile_table(profiles: Sequence[Mapping[str, Any] | None], fields: Mapping[str, str]) -> EventTable:
    """Profiles flattened: event count, numeric means, dominant categories, busiest hour band and weekday."""
    n = len(profiles)
    time_field = next((f for f, t in fields.items() if t == "timestamp"), "time")
    columns = [Column("events", "numeric", high="many", low="few")]
    columns += [Column(f"{f} mean", "numeric") for f, t in fields.items() if t == "numeric"]
    columns += [Column(f, "categorical") for f, t in fields.items() if t == "categorical"]
    columns += [Column(f"{time_field} hour", "categorical", joiner=" "), Column(f"{time_field} weekday", "categorical")]
    values = {c.name: np.full(n, math.nan) if c.kind == "numeric" else np.full(n, None, dtype=object) for c in columns}
    for i, prof in enumerate(profiles):
        if not prof:
            continue
        values["events"][i] = float(prof.get("count") or 0)
        for name, stats in (prof.get("numeric") or {}).items():
            if f"{name} mean" in values and stats.get("mean") is not None:
                values[f"{name} mean"][i] = float(stats["mean"])
        for name, shares in (prof.get("categorical") or {}).items():
            if name in values and shares:
                values[name][i] = max(sorted(shares), key=lambda v: shares[v])  # the dominant category
        hours, days = prof.get("hours") or [], prof.get("weekdays") or []
        if any(hours):
            values[f"{time_field} hour"][i] = HOUR_BANDS[int(np.argmax(hours)) // 6]
        if any(days):
            values[f"{time_field} weekday"][i] = WEEKDAYS[int(np.argmax(days))]
    kept = [c for c in columns if _known(values[c.name]).any()]
    return EventTable(kept, {c.name: values[c.name] for c in kept})


def field_findings(table: EventTable, labels: np.ndarray | Sequence[int], *,
                   config: EventSummaryConfig | None = None) -> dict[int, list[FieldFinding]]:
    """The findings of every cluster, best first (see the module doc).

    Args:
        table: The sample's columns (:func:`event_table`).
        labels: Each point's cluster id.
        config: Thresholds.

    Returns:
        Cluster id -> at most ``max_findings`` findings with score >= ``min_separation``.
    """
    cfg = config or EventSummaryConfig()
    lab = np.asarray(labels, dtype=np.int64)
    n = len(next(iter(table.values.values()))) if table.values else len(lab)
    if len(lab) != n:
        raise ValueError(f"{n} rows but {len(lab)} labels")
    clusters, inverse = np.unique(lab, return_inverse=True)
    found: dict[int, list[FieldFinding]] = {int(c): [] for c in clusters}
    for col in table.columns:
        score = _numeric if col.kind == "numeric" else _categorical
        for row, findings in score(col, table.values[col.name], inverse, len(clusters), cfg).items():
            found[int(clusters[row])].extend(f for f in findings if f.score >= cfg.min_separation)
    return {c: sorted(fs, key=lambda f: (-f.score, f.field, f.text))[:cfg.max_findings] for c, fs in found.items()}


def _fmt(x: float) -> str:
    if float(x).is_integer():
        return str(int(x))
    return str(round(x)) if abs(x) >= 100 else f"{x:.3g}"


def _ks_critical(alpha: float, n_in: int, n_out: int) -> float:
    """The two-sample KS distance beyond which the difference is significant at ``alpha`` (asymptotic)."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n_in + n_out) / (n_in * n_out))


def _z_critical(alpha: float) -> float:
    """Two-sided standard normal quantile (no scipy.stats.norm object per call)."""
    return float(ndtri(1 - alpha / 2))


def _ks(xs: np.ndarray, members: np.ndarray) -> float:
    """KS distance between sorted ``members`` and the rest of sorted ``xs`` (members included in ``xs``)."""
    n_in, n_out = len(members), len(xs) - len(members)
    le_all, le_in = np.searchsorted(xs, members, "right"), np.searchsorted(members, members, "right")
    lt_all, lt_in = np.searchsorted(xs, members, "left"), np.searchsorted(members, members, "left")
    above = np.max(le_in / n_in - (le_all - le_in) / n_out)  # the gap is widest at a member's value ...
    below = np.max((lt_all - lt_in) / n_out - lt_in / n_in)  # ... or just below one
    return float(max(above, below, 0.0))


def _numeric(col: Column, vals: np.ndarray, inverse: np.ndarray, k: int,
             cfg: EventSummaryConfig) -> dict[int, list[FieldFinding]]:
    present = ~np.isnan(vals)
    x, grp = vals[present], inverse[present]
    n = len(x)
    if n < 2:
        return {}
    xs = np.sort(x)
    ranks = rankdata(x)  # average ranks: ties count half
    n_c = np.bincount(grp, minlength=k)
    rank_sum = np.bincount(grp, weights=ranks, minlength=k)
    q10, q25, med, q75, q90 = np.quantile(x, [0.1, 0.25, 0.5, 0.75, 0.9], method="inverted_cdf")
    scale = (q75 - q25) or float(np.std(x)) or 1.0
    span = q90 - q10
    out: dict[int, list[FieldFinding]] = {}
    for c in np.flatnonzero((n_c > 0) & (n_c < n)):
        n_in, n_out = int(n_c[c]), n - int(n_c[c])
        members = np.sort(x[grp == c])
        ks = _ks(xs, members)
        if ks < _ks_critical(cfg.alpha, n_in, n_out):
            continue
        auc = (rank_sum[c] - n_in * (n_in + 1) / 2) / (n_in * n_out)  # Mann-Whitney U / (n_in n_out)
        lo, m, hi = np.quantile(members, [0.1, 0.5, 0.9], method="inverted_cdf")
        if abs(2 * auc - 1) >= ks / 2:
            text = f"{col.name} {col.high if auc > 0.5 else col.low}"
        elif span > 0 and hi - lo <= cfg.narrow_band * span:
            text = f"{col.name} {_fmt(lo)}–{_fmt(hi)}" if lo != hi else f"{col.name} {_fmt(lo)}"
        else:
            text = f"{col.name} varied"
        out[int(c)] = [FieldFinding(field=col.name, kind="numeric", text=text, score=ks,
                                    median=float(m), overall_median=float(med), effect=float((m - med) / scale),
                                    low=float(lo), high=float(hi))]
    return out


def _categorical(col: Column, vals: np.ndarray, inverse: np.ndarray, k: int,
                 cfg: EventSummaryConfig) -> dict[int, list[FieldFinding]]:
    present = _known(vals)
    if not present.any():
        return {}
    uniq, cat = np.unique(vals[present].astype(str), return_inverse=True)
    names = [str(u) for u in uniq]
    table = np.bincount(inverse[present] * len(names) + cat, minlength=k * len(names)).reshape(k, len(names))
    n_c, total = table.sum(axis=1), table.sum(axis=0)
    n = int(total.sum())
    overall = total / n
    z_crit = _z_critical(cfg.alpha)
    out: dict[int, list[FieldFinding]] = {}
    for c in np.flatnonzero((n_c > 0) & (n_c < n)):
        share = table[c] / n_c[c]
        rest = (total - table[c]) / (n - n_c[c])
        lift = share / overall
        z = (share - rest) / np.sqrt(np.maximum(overall * (1 - overall) * (1 / n_c[c] + 1 / (n - n_c[c])), 1e-300))
        ok = (lift >= cfg.min_lift) & (share >= cfg.min_support) & (table[c] >= cfg.min_count) & (z >= z_crit)
        picks = sorted(np.flatnonzero(ok), key=lambda j: (-(share[j] - rest[j]), names[j]))
        out[int(c)] = [FieldFinding(field=col.name, kind="categorical", text=f"{col.name}{col.joiner}{names[j]}",
                                    score=float(share[j] - rest[j]), category=names[j], share=float(share[j]),
                                    overall_share=float(overall[j]), lift=float(lift[j]))
                       for j in picks[:cfg.max_categories_per_field]]
    return out


def event_text(source: Mapping[str, Any] | None, fields: Mapping[str, str], *, max_fields: int = 8) -> str:
    """A one-line rendering of an event for a representative (``"amount=12.5, country=BR, ..."``).

    Profiles show their entity, event count and numeric means.
    """
    if not source:
        return ""
    if "profile" in source:
        prof = source["profile"]
        parts = [f"entity={source.get('entity', '')}", f"events={prof.get('count', 0)}"]
        parts += [f"{n} mean={_fmt(float(s['mean']))}" for n, s in (prof.get("numeric") or {}).items()
                  if s.get("mean") is not None]
        return ", ".join(parts[:max_fields])
    event = source.get("event", source)
    parts = []
    for name, ftype in fields.items():
        v = event.get(name)
        if v is None or ftype == "text":
            continue
        if ftype == "timestamp" and isinstance(v, (int, float)):
            v = datetime.fromtimestamp(float(v), timezone.utc).strftime("%Y-%m-%d %H:%M")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = _fmt(float(v))
        parts.append(f"{name}={v}")
    return ", ".join(parts[:max_fields])

