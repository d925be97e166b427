"""Anomaly scoring (how strange a point is) kept apart from the decision (is it flagged)."""

from .scoring import DEFAULT_SCORER, SCORERS, large_clusters, score
from .threshold import MODES, QuantileThreshold, calibrate_thresholds, decide

__all__ = ["DEFAULT_SCORER", "SCORERS", "large_clusters", "score", "MODES", "QuantileThreshold",
           "calibrate_thresholds", "decide"]
