"""Decisions on scores, kept apart from the scores (as river's ``ThresholdFilter``).

Three modes, calibrated on the fit sample and stored in the model version so that online
(ingest) and batch (run write-back) decisions agree:

``contamination``
    One threshold: the ``1 - contamination`` quantile of the sample's scores, so about that
    share of points is flagged.
``cluster_quantile``
    One threshold per cluster: the same quantile of each cluster's own sample scores, so every
    cluster flags about that share of its members (clusters with too few sample members fall
    back to the global threshold).
``absolute``
    A fixed score chosen by the user (e.g. 3 radii for ``normalized``/``cblof``).
"""

from __future__ import annotations

from ..errors import shown

from dataclasses import dataclass

import numpy as np

__all__ = ["MODES", "QuantileThreshold", "calibrate_thresholds", "decide"]

MODES = ("contamination", "cluster_quantile", "absolute")
MIN_CLUSTER_SAMPLE = 20


@dataclass(frozen=True)
class QuantileThreshold:
    """Flag the ``contamination`` share of the calibration scores (the highest ones)."""

    contamination: float

    def calibrate(self, scores: np.ndarray) -> float:
        """Threshold such that about ``contamination`` of ``scores`` lie strictly above it."""
        if len(scores) == 0:
            return float("inf")
        return float(np.quantile(scores, 1.0 - self.contamination, method="higher"))

    @staticmethod
    def decide(scores: np.ndarray, threshold: float) -> np.ndarray:
        """Boolean flags: score strictly above the threshold."""
        return scores > threshold


def calibrate_thresholds(
    mode: str, scores: np.ndarray, rows: np.ndarray, k: int, *, contamination: float, absolute: float | None
) -> np.ndarray:
    """Per-centroid-row thresholds for ``mode`` (a global threshold is broadcast to every row)."""
    if mode == "absolute":
        if absolute is None:
            raise ValueError("absolute mode needs a threshold")
        return np.full(k, float(absolute))
    q = QuantileThreshold(contamination)
    overall = q.calibrate(scores)
    out = np.full(k, overall)
    if mode == "cluster_quantile":
        for r in range(k):
            member = scores[rows == r]
            if len(member) >= MIN_CLUSTER_SAMPLE:
                out[r] = q.calibrate(member)
    elif mode != "contamination":
        raise ValueError(f"unknown threshold mode {shown(mode)}; known: {', '.join(MODES)}")
    return out


def decide(scores: np.ndarray, rows: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Flags: each point's score strictly above its cluster's threshold."""
    return scores > thresholds[rows]
