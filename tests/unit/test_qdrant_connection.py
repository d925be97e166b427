"""Settings → Qdrant store factory: choosing the backend, TLS/API-key options, unreachable servers, ids."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from embcluster.config import Settings
from embcluster.errors import InvalidArgument, Unavailable
from embcluster.store import EdgeStoreFactory, make_store_factory
from embcluster.store.server import (
    QdrantStoreFactory,
    int_point_id,
    parse_public_point_id,
    public_point_id,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_edge_is_the_default(tmp_path: Path) -> None:
    f = make_store_factory(Settings(data_dir=tmp_path))
    assert isinstance(f, EdgeStoreFactory) and f.root == tmp_path / "shards"


def test_local_mode_from_settings(tmp_path: Path) -> None:
    f = make_store_factory(Settings(data_dir=tmp_path, store="qdrant", qdrant_path=str(tmp_path / "q"),
                                    qdrant_collection_prefix="p_"))
    assert isinstance(f, QdrantStoreFactory)
    f.create("c", dim=3, metric="cosine", indexed={"cluster_id": "integer"})
    assert [c.name for c in f.client.get_collections().collections] == ["p_c"]
    f.close()


@pytest.mark.parametrize("extra", [{}, {"qdrant_url": "http://x:6333", "qdrant_path": ":memory:"}])
def test_qdrant_needs_exactly_one_of_url_or_path(tmp_path: Path, extra: dict) -> None:
    with pytest.raises(InvalidArgument, match="qdrant_url.*qdrant_path"):
        make_store_factory(Settings(data_dir=tmp_path, store="qdrant", **extra))


def test_bad_qdrant_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="qdrant_collection_prefix"):
        Settings(qdrant_collection_prefix="a/b")
    with pytest.raises(ValidationError, match="qdrant_shard_number"):
        Settings(qdrant_shard_number=0)
    with pytest.raises(ValidationError, match="store"):
        Settings(store="postgres")  # type: ignore[arg-type]


def test_unreachable_server_names_the_url_not_the_key(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=tmp_path, store="qdrant", qdrant_url=url, qdrant_grpc_port=port,
                        qdrant_api_key="very-secret-key", qdrant_timeout_s=5)  # type: ignore[arg-type]
    assert "very-secret-key" not in repr(settings)
    with pytest.raises(Unavailable) as ei, pytest.warns(UserWarning, match="insecure connection"):
        make_store_factory(settings)  # qdrant-client warns about an API key over plain HTTP
    msg = ei.value.message
    assert msg.startswith(f"cannot reach the Qdrant server at {url} (gRPC port {port})")
    assert "very-secret-key" not in msg and "\n" not in msg


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a CA certificate")
def test_tls_options_build_a_client(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(ca), "-days", "1", "-subj", "/CN=embcluster-test"], check=True, capture_output=True)
    port = _closed_port()
    settings = Settings(data_dir=tmp_path, store="qdrant", qdrant_url=f"https://127.0.0.1:{port}",
                        qdrant_grpc_port=port, qdrant_https=True, qdrant_ca_cert=ca, qdrant_api_key="k",  # type: ignore[arg-type]
                        qdrant_timeout_s=5)
    with pytest.raises(Unavailable, match=f"https://127.0.0.1:{port}"):
        make_store_factory(settings)


def test_missing_ca_cert_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, store="qdrant", qdrant_url="https://q:6333",
                        qdrant_ca_cert=tmp_path / "nope.pem")
    with pytest.raises(InvalidArgument, match="qdrant_ca_cert '.*nope.pem' is not a readable PEM"):
        make_store_factory(settings)


def test_int_ids_travel_as_tagged_uuids() -> None:
    for n in (0, 1, 42, 2**64 - 1):
        tagged = int_point_id(n)
        assert uuid.UUID(tagged)  # a UUID the vector log can store
        assert public_point_id(tagged) == str(n)
        assert parse_public_point_id(str(n)) == tagged
    u = str(uuid.uuid4())
    assert public_point_id(u) == u and parse_public_point_id(u.upper()) == u
    with pytest.raises(ValueError):
        int_point_id(2**64)
    with pytest.raises(ValueError):
        parse_public_point_id("not-an-id")


def test_lost_server_is_unavailable_naming_it() -> None:
    """A store whose server went away answers UNAVAILABLE (not INTERNAL), naming where it was."""
    from qdrant_client import QdrantClient

    from embcluster.store.server import QdrantStore

    port = _closed_port()
    client = QdrantClient(url=f"http://127.0.0.1:{port}", grpc_port=port, prefer_grpc=True, timeout=3,
                          check_compatibility=False)
    store = QdrantStore(client, "c", dim=3, metric="cosine", where=f"http://127.0.0.1:{port}")
    with pytest.raises(Unavailable, match=f"Qdrant at http://127.0.0.1:{port} is unavailable: UNAVAILABLE"):
        store.count()
    client.close()


def test_cosine_vectors_read_back_as_unit_vectors_after_reload(tmp_path: Path) -> None:
    """Local mode returns cosine vectors un-normalised once reloaded from disk; the store normalises."""
    import numpy as np

    from embcluster.store.server import QdrantConnection

    conn = QdrantConnection(path=str(tmp_path / "q"))
    f = QdrantStoreFactory(conn)
    s = f.create("c", dim=2, metric="cosine", indexed={})
    pid = str(uuid.UUID(int=1))
    s.upsert([pid], np.array([[3.0, 4.0]], dtype=np.float32), [{}])
    f.close()
    f = QdrantStoreFactory(conn)
    s = f.open("c")
    np.testing.assert_allclose(s.retrieve([pid], with_vectors=True)[0].vector, [0.6, 0.8], rtol=1e-6)
    (_, mat), = list(s.iter_vectors(page_size=8))
    np.testing.assert_allclose(mat, [[0.6, 0.8]], rtol=1e-6)
    f.close()


def test_create_never_drops_an_existing_qdrant_collection() -> None:
    from qdrant_client import models as qm

    from embcluster.errors import AlreadyExists
    from embcluster.store.server import QdrantConnection

    f = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="")
    f.client.create_collection("theirs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
    f.client.upsert("theirs", points=[qm.PointStruct(id=1, vector=[1.0, 2.0], payload={"k": "v"})], wait=True)
    with pytest.raises(AlreadyExists, match="'theirs' already exists.*attach it"):
        f.create("theirs", dim=2, metric="euclid", indexed={})
    assert f.client.count("theirs").count == 1
    f.close()


def test_a_refused_api_key_is_not_reported_as_unreachable(tmp_path: Path) -> None:
    """A gRPC peer that answers every call UNAUTHENTICATED, as a Qdrant server does for a wrong key."""
    from concurrent import futures

    import grpc

    from embcluster.errors import FailedPrecondition

    class Refuse(grpc.GenericRpcHandler):
        def service(self, handler_call_details):  # type: ignore[no-untyped-def]
            def refuse(request, context):  # type: ignore[no-untyped-def]
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid api-key")
            return grpc.unary_unary_rpc_method_handler(refuse)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[Refuse()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = Settings(data_dir=tmp_path, store="qdrant", qdrant_url=f"http://127.0.0.1:{port}",
                            qdrant_grpc_port=port, qdrant_api_key="wrong", qdrant_timeout_s=5)
        with pytest.raises(FailedPrecondition, match=r"refused the API key.*UNAUTHENTICATED: Invalid api-key") as e, \
                pytest.warns(UserWarning, match="insecure connection"):
            make_store_factory(settings)
        assert "wrong" not in e.value.message  # the key itself is never printed
    finally:
        server.stop(0)
