"""embcluster: an embedding clustering service over a Qdrant vector database."""

__all__ = ["__version__"]

__version__ = "0.1.0"
