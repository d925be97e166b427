"""Anomaly scoring (how strange a point is) kept apart from the decision (is it flagged)."""

from .scoring import SCORERS, score
from .threshold import QuantileThreshold

__all__ = ["SCORERS", "score", "QuantileThreshold"]
