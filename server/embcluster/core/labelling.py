"""Writing the reserved fields: full write-backs, catch-ups and reverts (docs/architecture.md).

Every page is read, labelled and written under the collection lock, so an ingest that replaces a
point cannot interleave between reading its vector and writing its label.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Iterator, Sequence

import numpy as np

from ..config import Settings
from ..models import ClusterModel
from ..runs import RunContext
from ..store.base import FieldEquals, FieldMissing, PointFilter, PointId
from ..store.vectorlog import LiveSet
from .records import RESERVED_FIELDS, OpenCollection

__all__ = ["Labeller", "stale_filter"]

logger = logging.getLogger(__name__)

PAUSE_INDEXING_POINTS = 10_000  # a write-back of at least this many points pauses index builds


def stale_filter(coll: OpenCollection) -> PointFilter:
    """Points whose fields are not the served version's (labelled points, when none is served)."""
    if coll.model is None:
        return PointFilter(must_not=(FieldMissing("model_version"),))
    return PointFilter(must_not=(FieldEquals("model_version", coll.model.version),))


class Labeller:
    """Writes models' labels onto points and keeps every point on the served version.

    Args:
        settings: Page size of each locked write.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._catchups: list[threading.Thread] = []
        # Set at shutdown: catch-ups (and reverts, which are catch-ups) end at their next page.
        # What they leave is durable and found again: every start catches up stale points.
        self._stopping = threading.Event()

    def write_back(self, coll: OpenCollection, model: ClusterModel,
                   pages: Iterator[tuple[Sequence[PointId], np.ndarray]], ctx: RunContext | None, total: int, *,
                   phase: str, start: float, span: float, while_served: bool = False,
                   stop: threading.Event | None = None) -> dict[str, Any]:
        """Label every point of ``pages`` with ``model``; returns full-pass statistics.

        The statistics (stored in the version's metrics) are per centroid row: ``sizes_full``,
        ``radius_full`` (RMS distance) and ``anomaly_counts_full``; plus ``points_labelled`` and
        ``anomalies_full`` in all.

        With ``while_served`` (catch-ups), stop as soon as ``model`` is no longer the served one;
        with ``stop``, as soon as it is set (the statistics then carry ``stopped``).

        Each page is read, labelled and written under the collection lock, so an ingest that
        replaces a point cannot interleave between reading its vector and writing its label.
        """
        # No vector index build while a collection's labels are rewritten (its journal would hold
        # them all); one that is due starts when the write-back ends. A small catch-up is journaled.
        paused = coll.store.pause_indexing() if total >= PAUSE_INDEXING_POINTS else contextlib.nullcontext()
        with paused:
            return self._write_back(coll, model, pages, ctx, total, phase=phase, start=start, span=span,
                                    while_served=while_served, stop=stop)

    def _write_back(self, coll: OpenCollection, model: ClusterModel,
                    pages: Iterator[tuple[Sequence[PointId], np.ndarray]], ctx: RunContext | None, total: int, *,
                    phase: str, start: float, span: float, while_served: bool,
                    stop: threading.Event | None) -> dict[str, Any]:
        k = model.k
        sq = np.zeros(k)
        counts = np.zeros(k, dtype=np.int64)
        flagged = np.zeros(k, dtype=np.int64)
        done = 0
        stopped = False
        while True:
            if stop is not None and stop.is_set():
                stopped = True
                break
            with coll.lock:
                coll.check_open()
                if while_served and coll.model is not model:
                    break  # a run switched the served version meanwhile: its own catch-up takes over
                page = next(pages, None)
                if page is None:
                    break
                ids, x = page
                labels = model.assign(x)
                coll.store.set_fields(list(zip(ids, labels.payloads())))
            sq += np.bincount(labels.rows, weights=labels.cluster_distance**2, minlength=k)
            counts += np.bincount(labels.rows, minlength=k)
            flagged += np.bincount(labels.rows[labels.is_anomaly], minlength=k)
            done += len(ids)
            if ctx is not None:
                ctx.info.points_labelled = done
                ctx.progress(phase, start + span * done / max(total, 1))
        stats: dict[str, Any] = {
            "points_labelled": done,
            "sizes_full": [int(c) for c in counts],
            "radius_full": [float(r) for r in np.sqrt(sq / np.maximum(counts, 1))],
            "anomalies_full": int(flagged.sum()),
            "anomaly_counts_full": [int(c) for c in flagged],
        }
        if stop is not None:  # not part of a model's metrics (a run's pass has no stop)
            stats["stopped"] = stopped
        return stats

    def relabel_ids(self, coll: OpenCollection, ids: list[str]) -> None:
        """Relabel specific points with the served model, reading their current vectors."""
        model = coll.model
        if model is None or not ids:
            return

        def pages() -> Iterator[tuple[list[str], np.ndarray]]:
            for s in range(0, len(ids), self.settings.page_size):
                found = coll.store.retrieve(ids[s:s + self.settings.page_size], with_vectors=True)
                if found:
                    yield [p.id for p in found], np.stack([p.vector for p in found]).astype(np.float32)  # type: ignore[misc]

        self.write_back(coll, model, pages(), None, len(ids), phase="catching_up", start=0, span=0,
                        while_served=True)

    def catch_up(self, coll: OpenCollection) -> int:
        """Put every point on the served version: relabel stale points, or clear the fields if none is served."""
        model = coll.model
        stale = stale_filter(coll)
        total = coll.store.count(stale)
        if not total:
            return 0
        if model is None:
            while True:  # a run that never got served left its fields: remove them
                if self._stopping.is_set():
                    logger.info("shutdown: %s keeps the fields of a run that was never served; the next start "
                                "removes them", coll.record.name)
                    return 0
                with coll.lock:
                    coll.check_open()
                    if coll.model is not None:
                        return 0
                    points, _ = coll.store.scroll(limit=self.settings.page_size, flt=stale, with_payload=False)
                    if not points:
                        return total
                    coll.store.delete_fields([p.id for p in points], RESERVED_FIELDS)
        stats = self.write_back(coll, model, coll.store.iter_vectors(page_size=self.settings.page_size, flt=stale),
                                None, total, phase="catching_up", start=0, span=0, while_served=True,
                                stop=self._stopping)
        if stats["stopped"]:
            logger.info("shutdown: caught up %d of %d points of %s to model v%d; the next start catches up the rest",
                        stats["points_labelled"], total, coll.record.name, model.version)
        else:
            logger.info("caught up %d points of %s to model v%d", stats["points_labelled"], coll.record.name,
                        model.version)
        return int(stats["points_labelled"])

    def catch_up_safely(self, coll: OpenCollection) -> None:
        """:meth:`catch_up`, logging a failure (the next start retries)."""
        try:
            self.catch_up(coll)
        except Exception:
            logger.exception("catch-up of %s failed; it is retried at the next start", coll.record.name)

    def start_catch_up(self, coll: OpenCollection) -> None:
        """Catch ``coll`` up in a background thread (at start-up, after a run died mid write-back)."""
        thread = threading.Thread(target=self.catch_up_safely, args=(coll,), daemon=True,
                                  name=f"catch-up-{coll.record.name}")
        thread.start()
        self._catchups.append(thread)

    def catching_up(self, name: str) -> bool:
        """Whether the start-up catch-up of ``name`` is still relabelling."""
        return any(t.is_alive() and t.name == f"catch-up-{name}" for t in self._catchups)

    def stop(self) -> None:
        """At shutdown: catch-ups and reverts end at their next page (the next start finishes them)."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait for the start-up catch-ups."""
        for thread in self._catchups:
            thread.join(timeout=timeout)

    def revert(self, coll: OpenCollection, version: int) -> None:
        """Undo a failed run's partial write-back: points go back to the served version (or none)."""
        try:
            self.catch_up(coll)
        except Exception:
            logger.exception("reverting the partial write-back of v%d in %s failed; the next start retries",
                             version, coll.record.name)

    def live_vectors(self, coll: OpenCollection, ctx: RunContext) -> LiveSet:
        """The vector log's live set, checked against the store (rebuilt or compacted if needed)."""
        with coll.lock:  # ingest appends and upserts under this lock: the pair is consistent
            live = coll.vlog.live()
            stored = coll.store.count()
        # An attached collection changes behind our back; a stale log missed a write.
        if len(live) != stored or coll.vlog.stale or coll.record.external_collection:
            logger.warning("vector log of %s has %d live points (stale: %s), the store %d: rebuilding it",
                           coll.record.name, len(live), coll.vlog.stale, stored)
            ctx.progress("rebuilding_vector_log", 0.0, persist=True)
            with coll.lock:  # no appends while the file is replaced
                coll.vlog.rebuild(coll.store, self.settings.page_size)
                live = coll.vlog.live()
        elif coll.vlog.records > 2 * len(live) + 10_000:
            with coll.lock:
                live = coll.vlog.live()  # again: appends may have come since the check
                coll.vlog.compact(live)
                live = LiveSet(np.arange(coll.vlog.records, dtype=np.int64), coll.vlog.records)  # all live now
        return live
