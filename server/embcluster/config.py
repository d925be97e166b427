"""The one settings object: read once at start-up (env ``EMBCLUSTER_*`` + CLI flags), passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "DEFAULT_TEXT_MODEL"]

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``EMBCLUSTER_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EMBCLUSTER_", env_file=None, extra="forbid")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = pick a free one).")
    data_dir: Path = Field(Path("./embcluster-data"), description="Collections, shards and models.")
    store: Literal["edge"] = Field("edge", description="Vector store backend.")
    default_text_model: str = Field(DEFAULT_TEXT_MODEL, description="Model for TEXT collections.")
    text_models: dict[str, str] = Field(
        default_factory=dict,
        description="Extra sentence-transformers models: name -> local directory.",
    )
    embed_batch_size: int = Field(64, ge=1, le=4096)
    max_batch_items: int = Field(1000, ge=1, description="Items per Ingest/Classify call.")
    max_text_chars: int = Field(20_000, ge=1, description="Characters per text item.")
    max_metadata_bytes: int = Field(65_536, ge=2, description="JSON bytes of one item's metadata.")
    max_message_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="gRPC message limit.")
    grpc_workers: int = Field(16, ge=1, le=256, description="gRPC handler threads; each open stream holds one.")
    run_workers: int = Field(1, ge=1, le=64, description="Clustering runs in parallel (all collections).")
    blas_threads: int = Field(1, ge=1, le=256, description="numpy BLAS threads (small products: 1 is fastest).")
    page_size: int = Field(1024, ge=16, le=65536, description="Points per page when streaming a collection.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
