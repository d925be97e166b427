"""Anomaly scoring (how strange a point is) kept apart from the decision (is it flagged)."""

from .ensemble import ENSEMBLE_KS, ScoreComponent, component_distances, ensemble_scores, fit_components
from .scoring import DEFAULT_SCORER, SCORERS, large_clusters, score
from .threshold import MODES, QuantileThreshold, calibrate_thresholds, decide

__all__ = ["DEFAULT_SCORER", "SCORERS", "large_clusters", "score", "MODES", "QuantileThreshold",
           "calibrate_thresholds", "decide", "ENSEMBLE_KS", "ScoreComponent", "component_distances",
           "ensemble_scores", "fit_components"]
