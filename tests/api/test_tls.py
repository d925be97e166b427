"""TLS and mTLS on the gRPC port with a CA made here by openssl: handshakes that must work and
ones that must fail (a plaintext client, an mTLS server without a client certificate)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from embcluster_client import AsyncEmbclusterClient, EmbclusterClient

from embcluster.auth import ApiKeyRecord, hash_key
from embcluster.config import Settings

from .conftest import Running

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem; server.pem/.key for localhost and 127.0.0.1; client.pem/.key; other-ca's client cert."""
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=embcluster test {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("stranger", "other-ca", "client.ext")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return d


def _serve(settings: Settings, pki: Path, mtls: bool, **extra: object) -> Running:
    return Running(settings.model_copy(update={
        "tls_cert_file": pki / "server.pem", "tls_key_file": pki / "server.key",
        "tls_client_ca_file": pki / "ca.pem" if mtls else None, **extra}))


@pytest.fixture
def tls_server(settings: Settings, pki: Path) -> Iterator[Running]:
    r = _serve(settings, pki, mtls=False)
    yield r
    r.stop()


@pytest.fixture
def mtls_server(settings: Settings, pki: Path) -> Iterator[Running]:
    key = "emb_tls-test-key-000000000000000"
    r = _serve(settings, pki, mtls=True, api_keys=[ApiKeyRecord(name="t", sha256=hash_key(key), scopes=("admin",))])
    r.api_key = key  # type: ignore[attr-defined]
    yield r
    r.stop()


def _fails(client: EmbclusterClient) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        client.list_collections()
    return info.value.code()


def test_tls_handshake_works_and_a_plaintext_client_fails(tls_server: Running, pki: Path) -> None:
    port = tls_server.server.port
    with EmbclusterClient(f"127.0.0.1:{port}", timeout=20, ca_cert=pki / "ca.pem") as c:
        c.create_collection("v", input_kind="vector", vector_dim=3)
        assert [x.name for x in c.list_collections()] == ["v"]
        assert c.health() == "SERVING"
    with EmbclusterClient(f"localhost:{port}", timeout=20, ca_cert=pki / "ca.pem") as c:  # the DNS name
        assert len(c.list_collections()) == 1
    with EmbclusterClient(f"127.0.0.1:{port}", timeout=5) as plain:
        assert _fails(plain) == grpc.StatusCode.UNAVAILABLE
    with EmbclusterClient(f"127.0.0.1:{port}", timeout=5, ca_cert=pki / "other-ca.pem") as untrusted:
        assert _fails(untrusted) == grpc.StatusCode.UNAVAILABLE  # the server's cert is not from that CA


def test_mtls_needs_a_client_certificate_from_the_ca(mtls_server: Running, pki: Path) -> None:
    target, key = f"127.0.0.1:{mtls_server.server.port}", mtls_server.api_key  # type: ignore[attr-defined]
    with EmbclusterClient(target, timeout=5, ca_cert=pki / "ca.pem", api_key=key) as no_cert:
        assert _fails(no_cert) == grpc.StatusCode.UNAVAILABLE
    with EmbclusterClient(target, timeout=5, ca_cert=pki / "ca.pem", api_key=key,
                          client_cert=pki / "stranger.pem", client_key=pki / "stranger.key") as stranger:
        assert _fails(stranger) == grpc.StatusCode.UNAVAILABLE
    with EmbclusterClient(target, timeout=5, api_key=key) as plain:
        assert _fails(plain) == grpc.StatusCode.UNAVAILABLE
    with EmbclusterClient(target, timeout=20, ca_cert=pki / "ca.pem", client_cert=pki / "client.pem",
                          client_key=pki / "client.key") as keyless:  # TLS is not a key
        assert _fails(keyless) == grpc.StatusCode.UNAUTHENTICATED
    with EmbclusterClient(target, timeout=20, ca_cert=pki / "ca.pem", api_key=key,
                          client_cert=pki / "client.pem", client_key=pki / "client.key") as c:
        c.create_collection("m", input_kind="vector", vector_dim=3)
        c.ingest("m", [{"id": "p", "vector": [1.0, 0.0, 0.0]}])
        assert c.get_collection("m").point_count == 1

    async def aio() -> int:
        async with AsyncEmbclusterClient(target, timeout=20, ca_cert=pki / "ca.pem", api_key=key,
                                         client_cert=pki / "client.pem", client_key=pki / "client.key") as c:
            return (await c.get_collection("m")).point_count

    assert asyncio.run(aio()) == 1


def test_cli_client_commands_take_tls_flags_and_the_key(mtls_server: Running, pki: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    target = f"127.0.0.1:{mtls_server.server.port}"
    flags = ["--server", target, "--ca-cert", str(pki / "ca.pem"), "--client-cert", str(pki / "client.pem"),
             "--client-key", str(pki / "client.key")]
    assert main(["health", *flags]) == 0  # health is open: no key needed
    key_file = pki / "cli.key"
    key_file.write_text(mtls_server.api_key + "\n")  # type: ignore[attr-defined]
    export = ["export", "nope", "x.snap", *flags]
    assert main(export) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert main([*export, "--api-key-file", str(key_file)]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err  # authenticated: the collection does not exist
    monkeypatch.setenv("EMBCLUSTER_API_KEY", mtls_server.api_key)  # type: ignore[attr-defined]
    assert main(export) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_tls_settings_are_checked(tmp_path: Path, pki: Path, settings: Settings, make_service) -> None:
    from pydantic import ValidationError

    from embcluster.api.server import GrpcServer
    from embcluster.errors import InvalidArgument

    with pytest.raises(ValidationError, match="go together"):
        Settings(data_dir=tmp_path, tls_cert_file=pki / "server.pem")
    with pytest.raises(ValidationError, match="needs tls_cert_file"):
        Settings(data_dir=tmp_path, tls_client_ca_file=pki / "ca.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(InvalidArgument, match="is not PEM"):
        GrpcServer(make_service(settings.data_dir),
                   settings.model_copy(update={"tls_cert_file": tmp_path / "junk.pem", "tls_key_file": pki / "server.key"}))


def test_metrics_endpoint_serves_https_with_the_grpc_certificate(tls_server: Running, pki: Path) -> None:
    import ssl
    import urllib.error
    import urllib.request

    from embcluster.metrics import MetricsEndpoint

    endpoint = MetricsEndpoint(tls_server.service.metrics, "127.0.0.1", 0, certfile=str(pki / "server.pem"),
                               keyfile=str(pki / "server.key"))
    try:
        assert endpoint.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with urllib.request.urlopen(endpoint.url, context=context, timeout=10) as response:
            assert b"embcluster_rpc_requests_total" in response.read() or response.status == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(endpoint.url.replace("https://", "http://"), timeout=10)
    finally:
        endpoint.close()
