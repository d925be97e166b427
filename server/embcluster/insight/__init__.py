"""Seeing the clusters: keywords, labels, event field summaries and representatives per cluster.

Pure Python over a clustering run's sample (no store, no gRPC): :func:`summary.summarize`
turns the sample's ids, cluster ids, distances and source texts or events into one
:class:`summary.ClusterSummary` per cluster, stored as JSON with the model version.
"""
