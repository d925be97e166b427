"""Clustering: k-means fit on a bounded sample, assignment, choice of k, stable cluster ids."""

from .assign import assign_nearest
from .choose_k import KScore, choose_k
from .kmeans import KMeansFit, fit_kmeans
from .matching import MatchReport, match_clusters

__all__ = ["assign_nearest", "KScore", "choose_k", "KMeansFit", "fit_kmeans", "MatchReport", "match_clusters"]
