"""Generated protobuf and gRPC stubs for embcluster.v1 (do not edit)."""
