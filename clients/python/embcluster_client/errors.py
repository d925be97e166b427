"""Exceptions raised by the embcluster client (gRPC errors are not wrapped)."""

from __future__ import annotations

from embcluster.api.v1 import embcluster_pb2 as pb

__all__ = ["RunFailed"]


class RunFailed(Exception):
    """A clustering run ended FAILED or CANCELLED.

    Attributes:
        run: The run as last reported by the server.
    """

    def __init__(self, run: pb.ClusteringRun) -> None:
        self.run = run
        state = pb.RunState.Name(run.state)
        detail = f": {run.error}" if run.error else ""
        super().__init__(f"clustering run {run.run_id} of {run.collection!r} ended {state}{detail}")
