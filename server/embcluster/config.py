"""The one settings object: read once at start-up (env ``EMBCLUSTER_*`` + CLI flags), passed down."""

from __future__ import annotations

from pathlib import Path
import os
import re
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .auth import ApiKeyRecord
from .redact import redact

__all__ = ["Settings", "DEFAULT_TEXT_MODEL", "describe_settings_error"]

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``EMBCLUSTER_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EMBCLUSTER_", env_file=None, extra="forbid")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = pick a free one).")
    data_dir: Path = Field(Path("./embcluster-data"), description="Collections, shards and models.")
    store: Literal["edge", "qdrant"] = Field(
        "edge", description="Vector store backend: embedded Qdrant Edge, or Qdrant through qdrant-client.")
    qdrant_url: str = Field(
        "", description="Qdrant server URL, e.g. http://qdrant:6333 (gRPC on qdrant_grpc_port); store=qdrant.")
    qdrant_path: str = Field(
        "", description="qdrant-client local mode instead of a server: a directory or ':memory:' (tests only).")
    qdrant_grpc_port: int = Field(6334, ge=1, le=65535, description="Qdrant gRPC port (prefer_grpc).")
    qdrant_api_key: SecretStr | None = Field(None, description="Qdrant API key (sent only over the connection).")
    qdrant_https: bool | None = Field(None, description="Force TLS on/off (default: from the URL scheme).")
    qdrant_ca_cert: Path | None = Field(None, description="PEM CA certificate to verify the server's TLS cert.")
    qdrant_timeout_s: int = Field(30, ge=1, le=3600, description="Timeout of one Qdrant request, seconds.")
    qdrant_shard_number: int | None = Field(None, ge=1, le=1024, description="Shards per created collection.")
    qdrant_replication_factor: int | None = Field(None, ge=1, le=64, description="Replicas per shard.")
    qdrant_collection_prefix: str = Field(
        "embcluster_", pattern=r"^[A-Za-z0-9_-]{0,64}$",
        description="Prefix of the Qdrant collections the service creates (never applied to attached ones).")
    default_text_model: str = Field(DEFAULT_TEXT_MODEL, description="Model for TEXT collections.")
    text_models: dict[str, str] = Field(
        default_factory=dict,
        description="Extra sentence-transformers models: name -> local directory.",
    )
    embed_batch_size: int = Field(
        64, ge=1, le=4096, description="Texts per forward pass: the most the embedding queue gives the model at once "
                                       "(a larger request is cut into chunks of this size).")
    embed_batch_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="How long the idle embedding worker waits for more texts before a batch "
                                        "that is not full (0: it takes what is queued; requests arriving while it "
                                        "embeds go into its next batch).")
    embed_interactive_items: int = Field(
        8, ge=0, le=4096, description="Requests of at most this many texts (Classify/Search queries, single-item "
                                      "ingests) take the embedding queue's interactive lane, which has a worker "
                                      "thread of its own: they never wait for a bulk request's chunks.")
    embed_bulk_nice: int = Field(
        10, ge=0, le=19, description="Nice value (absolute, not added) of the thread that embeds bulk requests, and "
                                     "of torch's threads it starts (Linux; 0: normal priority; a service already at "
                                     "this nice or lower keeps its own). Interactive requests have a worker thread of "
                                     "their own at normal priority, so while the cores are short, queries, vector "
                                     "calls and writes get them before bulk embedding; alone, bulk embedding runs at "
                                     "full speed. ONNX Runtime's threads (tier onnx-int8) keep their priority.")
    max_batch_items: int = Field(1000, ge=1, description="Items per Ingest/Classify call.")
    max_text_chars: int = Field(
        1_000_000, ge=1, description="Characters per text item (the model reads a window of it: see long_text).")
    long_text_max_windows: int = Field(
        32, ge=1, le=1024, description="Collections with long_text=pool: windows embedded per text at most; "
                                       "beyond them a text is truncated (and counted).")
    max_metadata_bytes: int = Field(65_536, ge=2, description="JSON bytes of one item's metadata.")
    max_message_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="gRPC message limit.")
    grpc_workers: int = Field(
        16, ge=2, le=256, description="gRPC handler threads; each open stream holds one (at least 2: one stream "
                                      "and unary calls).")
    max_open_streams: int | None = Field(
        None, ge=1, le=255,
        description="Streaming calls open at once (watchers, stream ingest; one more is RESOURCE_EXHAUSTED); "
                    "below grpc_workers so unary calls always have threads. Default: half of grpc_workers.")
    max_open_streams_per_client: int | None = Field(
        None, ge=1, le=255,
        description="Streaming calls one client may hold at once (a client: its API key when the call sends "
                    "`authorization` metadata, else its host), so one client cannot take every slot. "
                    "Default: half of the open-streams limit (at least 1).")
    shutdown_grace_s: float = Field(
        5.0, ge=0, le=600, description="On SIGTERM/SIGINT: seconds in-flight calls get to finish before the "
                                       "server cancels them; shutdown then completes within a few seconds more.")
    snapshot_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories (besides <data_dir>/snapshots) where ExportCollection/ImportCollection may "
                    "write and read files named by absolute path; env: paths joined by the OS path separator.")
    durability: Literal["fsync", "batched"] = Field(
        "fsync", description="fsync: every acknowledged write (ingest, delete) is fsynced (vector log: fdatasync; "
                             "Qdrant Edge: fdatasync of its write-ahead log, which a restart replays; its segments "
                             "are flushed at most every 5 s) before the call returns, so it survives a power loss. batched: written to the OS only (survives a killed process, not a power "
                             "loss: the OS writes it back within seconds); faster ingest.")
    min_free_mb: int = Field(
        256, ge=0, le=1_048_576,
        description="Writes are refused (RESOURCE_EXHAUSTED) while the data directory's disk has less free, so "
                    "the embedded store never touches a page of a memory-mapped file the disk cannot back (a "
                    "SIGBUS); keep it above about three times the largest request (0 = no check).")
    run_workers: int = Field(1, ge=1, le=64, description="Clustering runs in parallel (all collections).")
    blas_threads: int = Field(1, ge=1, le=256, description="numpy BLAS threads (small products: 1 is fastest).")
    page_size: int = Field(1024, ge=16, le=65536, description="Points per page when streaming a collection.")
    keep_model_versions: int = Field(
        100, ge=0, description="Model versions kept per collection (the newest, the served one and the version "
                               "it replaced); older ones are deleted after each run. 0 = keep all.")
    featurizer_min_points: int = Field(
        1000, ge=1, description="EVENT collections: points at which the provisional featurizer is refitted on all of them.")
    schedule_tick_s: float = Field(1.0, gt=0, le=3600, description="How often the scheduler checks every collection.")
    schedule_retry_s: float = Field(
        30.0, ge=0, description="After a failed scheduled run, wait max(this, the interval) before the next one.")
    restart_attempts: int = Field(
        1, ge=0, le=10, description="Re-runs of a run interrupted by a crash, after restarts (0 = never).")
    drift_window: int = Field(10_000, ge=10, le=10_000_000, description="Recent online labels kept per collection.")
    drift_min_points: int = Field(
        200, ge=1, description="Recent points needed before the drift trigger can fire.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines: text, or json (one object per line: ts, level, logger, msg, request_id).")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics over HTTP (`serve` only).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics HTTP endpoint binds.")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Metrics HTTP port (0 = pick a free one).")
    live_report: bool = Field(
        True, description="Serve every collection's cluster report read-only at /report/ on the metrics HTTP "
                          "endpoint (`serve` only; off when the metrics endpoint is).")

    # --- Security (README "Security"): API keys, TLS on the gRPC port. ---
    api_keys_file: Path | None = Field(
        None, description="API keys: a file of JSON lines {name, sha256, scopes, collections} "
                          "(`embcluster keys create` prints one). With keys, every call but health needs one.")
    api_keys: list[ApiKeyRecord] = Field(
        default_factory=list, description="API keys given in the environment: a JSON list of the key-file "
                                          "records (added to those of api_keys_file).")
    insecure_open: bool = Field(
        False, description="Serve on a non-loopback address without API keys (refused otherwise).")
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain) of the gRPC port: TLS on.")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle: mTLS, every client must present a certificate it signed.")

    @field_validator("snapshot_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        """``EMBCLUSTER_SNAPSHOT_DIRS=/a:/b`` (``;`` on Windows), as PATH is written."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("snapshot_dirs")
    @classmethod
    def _absolute_dirs(cls, value: list[Path]) -> list[Path]:
        """Absolute only: a relative entry would depend on the server's working directory."""
        out = [Path(d).expanduser() for d in value]
        relative = [str(d) for d in out if not d.is_absolute()]
        if relative:
            raise ValueError(f"snapshot_dirs entries must be absolute paths, got {relative}")
        return out

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        """``~/data`` means the home directory's, also when no shell expanded it (env files, compose)."""
        return value.expanduser()

    @property
    def reserve_bytes(self) -> int:
        """``min_free_mb`` in bytes."""
        return self.min_free_mb * 2**20

    @property
    def open_streams_limit(self) -> int:
        """Streaming calls allowed at once: ``max_open_streams``, or half of ``grpc_workers`` (at least 1)."""
        return self.max_open_streams or max(1, self.grpc_workers // 2)

    @property
    def open_streams_per_client(self) -> int:
        """Streams one client may hold: ``max_open_streams_per_client``, or half of the limit (at least 1)."""
        return min(self.max_open_streams_per_client or max(1, self.open_streams_limit // 2), self.open_streams_limit)

    @model_validator(mode="after")
    def _tls_files_paired(self) -> "Settings":
        """A certificate needs its key (and the reverse); a client CA needs TLS."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file (TLS)")
        return self

    @model_validator(mode="after")
    def _streams_leave_workers(self) -> "Settings":
        """Open streams each hold a gRPC thread: leave at least one for unary calls."""
        if self.max_open_streams is not None and self.max_open_streams >= self.grpc_workers:
            raise ValueError(f"max_open_streams ({self.max_open_streams}) must be below grpc_workers "
                             f"({self.grpc_workers}): each open stream holds a worker thread")
        return self


def describe_settings_error(exc: Exception) -> str:
    """One line per problem: the setting, its variable ``EMBCLUSTER_<NAME>`` (or flag), the value, why."""
    if not isinstance(exc, ValidationError):  # pydantic-settings' SettingsError: a variable that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        hint = f" (EMBCLUSTER_{found.group(1).upper()} must be JSON)" if found else ""
        return f"  {exc}{hint}"
    lines = []
    for err in exc.errors():
        why = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        loc = [str(part) for part in err.get("loc", ())]
        if loc:
            field = loc[0]
            shown = "<secret>" if "key" in field else redact(repr(err.get("input")))
            lines.append(f"  {'.'.join(loc)} (EMBCLUSTER_{field.upper()}) = {shown}: {why}")
        else:  # a check across fields: its message names them
            lines.append(f"  {why}")
    return "\n".join(lines)
