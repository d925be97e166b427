"""ExportCollection / ImportCollection through gRPC (sync and asyncio clients) on a TEXT collection."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import grpc
import pytest
from embcluster_client import AsyncEmbclusterClient

from pydantic import ValidationError

from embcluster.config import Settings

TEXTS = [
    "red cotton t-shirt", "blue denim jacket", "green wool scarf", "black leather belt",
    "stainless steel water bottle", "ceramic coffee mug", "glass teapot", "bamboo cutting board",
    "running shoes for trail", "tennis racket with strings", "yoga mat non-slip", "cycling helmet",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The test's own directory is a snapshot directory (``EMBCLUSTER_SNAPSHOT_DIRS``)."""
    return Settings(data_dir=tmp_path / "data", port=0, snapshot_dirs=[tmp_path])


def test_export_then_import_under_a_new_name_gives_the_same_answers(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = running.client
    c.create_collection("shop", input_kind="text", min_cluster_size=1)
    c.ingest("shop", [{"id": f"sku-{i}", "text": t, "metadata": {"i": i}} for i, t in enumerate(TEXTS)])
    c.cluster("shop", k=3, seed=0)

    out = c.export_collection("shop", str(tmp_path / "shop.tar"))
    assert (out.collection, out.points, out.models, out.served_model_version) == ("shop", len(TEXTS), 1, 1)
    assert out.sha256 == hashlib.sha256((tmp_path / "shop.tar").read_bytes()).hexdigest()
    with pytest.raises(grpc.RpcError) as err:
        c.export_collection("shop", str(tmp_path / "shop.tar"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

    got = c.import_collection(str(tmp_path / "shop.tar"), name="shop2")
    assert (got.collection, got.source_collection, got.points, got.sha256) == ("shop2", "shop", len(TEXTS), out.sha256)
    queries = ["a warm winter scarf", "porcelain tea cup", "mountain bike helmet"]
    assert c.classify("shop", queries) == c.classify("shop2", queries)
    assert list(c.list_clusters("shop").clusters) == list(c.list_clusters("shop2").clusters)
    p = c.get_point("shop2", id="sku-2")  # caller ids work under the new name
    assert p.text == "green wool scarf" and p.metadata["i"] == 2
    assert p.assignment == c.get_point("shop", id="sku-2").assignment

    with pytest.raises(grpc.RpcError) as err:
        c.import_collection(str(tmp_path / "shop.tar"))  # "shop" exists
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

    raw = bytearray((tmp_path / "shop.tar").read_bytes())
    raw[len(raw) // 3] ^= 0x55
    (tmp_path / "bad.tar").write_bytes(bytes(raw))
    with pytest.raises(grpc.RpcError) as err:
        c.import_collection(str(tmp_path / "bad.tar"), name="shop3")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "member" in (err.value.details() or "")
    assert "shop3" not in [x.name for x in c.list_collections()]
    with pytest.raises(grpc.RpcError) as err:
        c.import_collection(str(tmp_path / "nothing.tar"), name="shop3")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    async def via_aio() -> tuple[int, int]:
        async with AsyncEmbclusterClient(running.server.address, timeout=60) as ac:
            e = await ac.export_collection("shop2", "backups/shop2.tar")  # relative: under data_dir/snapshots
            i = await ac.import_collection("backups/shop2.tar", name="shop4")
            return e.points, i.points

    assert asyncio.run(via_aio()) == (len(TEXTS), len(TEXTS))
    assert (Path(running.settings.data_dir) / "snapshots" / "backups" / "shop2.tar").is_file()
    assert c.get_collection("shop4").served_model_version == 1


def test_cli_export_and_import_through_the_server(running, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from embcluster.cli import main

    c = running.client
    c.create_collection("vec", input_kind="vector", vector_dim=3, distance="euclid")
    c.ingest("vec", [{"id": f"v{i}", "vector": [float(i % 5), float(i % 3), 1.0]} for i in range(40)])
    addr = running.server.address
    assert main(["export", "vec", str(tmp_path / "v.tar"), "--server", addr]) == 0
    assert "'vec' -> 'vec': 40 points, 0 model versions (serving v0)" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "v.tar"), "--as", "vec2", "--server", addr]) == 0
    assert c.get_collection("vec2").point_count == 40
    assert main(["import", str(tmp_path / "v.tar"), "--as", "vec2", "--server", addr]) == 1
    assert "ALREADY_EXISTS" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "v.tar"), "--server", addr, "--data-dir", str(tmp_path)]) == 2


def test_paths_outside_the_snapshot_directories_are_permission_denied(  # type: ignore[no-untyped-def]
        running, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    c = running.client
    c.create_collection("vec", input_kind="vector", vector_dim=3, distance="euclid")
    c.ingest("vec", [{"id": f"v{i}", "vector": [float(i % 5), float(i % 3), 1.0]} for i in range(20)])
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    c.export_collection("vec", str(tmp_path / "ok.tar"))  # inside snapshot_dirs: allowed
    assert c.export_collection("vec", str(tmp_path / "new" / "deep" / "x.tar")).points == 20  # sub-directories made
    (elsewhere / "outside.tar").write_bytes((tmp_path / "ok.tar").read_bytes())
    (tmp_path / "link").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "file-link.tar").symlink_to(elsewhere / "outside.tar")

    for path in (str(elsewhere / "x.tar"), str(tmp_path / "link" / "x.tar"), str(tmp_path / "file-link.tar")):
        with pytest.raises(grpc.RpcError) as err:
            c.export_collection("vec", path, overwrite=True)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, path
        assert "EMBCLUSTER_SNAPSHOT_DIRS" in (err.value.details() or "")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["outside.tar"]  # nothing written there
    assert (elsewhere / "outside.tar").read_bytes() == (tmp_path / "ok.tar").read_bytes()

    for path in (str(tmp_path / ".."), str(tmp_path / "sub" / ".." / ".." / "x.tar")):  # '..' resolved too
        with pytest.raises(grpc.RpcError) as err:
            c.export_collection("vec", path, overwrite=True)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, path
    with pytest.raises(grpc.RpcError) as err:
        c.export_collection("vec", "~no-such-user-here/x.tar")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no-such-user-here" in (err.value.details() or "")

    for path in (str(elsewhere / "outside.tar"), str(tmp_path / "link" / "outside.tar"),
                 str(tmp_path / "file-link.tar")):
        with pytest.raises(grpc.RpcError) as err:
            c.import_collection(path, name="vec2")
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, path
    assert "vec2" not in [x.name for x in c.list_collections()]
    assert c.import_collection(str(tmp_path / "ok.tar"), name="vec3").points == 20


def test_a_configured_snapshot_directory_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    from .conftest import Running

    r = Running(Settings(data_dir=tmp_path / "data", port=0, snapshot_dirs=[tmp_path / "unmounted"]))
    try:
        r.client.create_collection("vec", input_kind="vector", vector_dim=3, distance="euclid")
        with pytest.raises(grpc.RpcError) as err:
            r.client.export_collection("vec", str(tmp_path / "unmounted" / "sub" / "x.tar"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in (err.value.details() or "")
        assert not (tmp_path / "unmounted").exists()
        assert r.client.export_collection("vec", "weekly/x.tar").points == 0  # <data_dir>/snapshots is made
    finally:
        r.stop()


def test_snapshot_dirs_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("EMBCLUSTER_SNAPSHOT_DIRS", f"{tmp_path / 'a'}{os.pathsep} {tmp_path / 'b'} {os.pathsep}")
    assert Settings().snapshot_dirs == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setenv("EMBCLUSTER_SNAPSHOT_DIRS", f"{tmp_path}{os.pathsep}backups")
    with pytest.raises(ValidationError, match="must be absolute paths, got \\['backups'\\]"):
        Settings()
    monkeypatch.setenv("EMBCLUSTER_DATA_DIR", "~/embcluster-data")
    monkeypatch.delenv("EMBCLUSTER_SNAPSHOT_DIRS")
    assert Settings().data_dir == Path.home() / "embcluster-data"  # as a shell would have expanded it
