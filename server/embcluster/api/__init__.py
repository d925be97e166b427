"""The gRPC layer: the only package that imports grpc or the generated stubs.

Kept import-light on purpose: the client imports ``embcluster.api.v1`` stubs without
pulling the server in.
"""

__all__: list[str] = []
