"""Decisions on scores: a quantile threshold calibrated on the fit sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QuantileThreshold"]


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
