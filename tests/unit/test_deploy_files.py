"""docker-compose.yml is valid (checked without a Docker engine, as Debian's docker-compose can)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="Debian's docker-compose is not installed (apt-get install docker-compose)")
def test_compose_file_is_valid_and_demands_an_api_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "QDRANT_API_KEY"}
    ok = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT,
                        env={**env, "QDRANT_API_KEY": "test-key"}, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "QDRANT_API_KEY" in missing.stderr


def test_compose_pins_the_qdrant_image_and_binds_loopback() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "image: qdrant/qdrant:v1.18.2" in text and ":latest" not in text
    ports = [line.split('"')[1] for line in text.splitlines() if line.strip().startswith('- "') and ":" in line]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)


# --- the embcluster service image and the compose services around it -------------------------------

COMPOSE_ENV = {"QDRANT_API_KEY": "test-key"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="Debian's docker-compose is not installed (apt-get install docker-compose)")
@pytest.mark.parametrize("profile", [None, "distributed"])
def test_compose_profiles_are_valid(profile: str | None) -> None:
    args = ["docker-compose", "-f", "docker-compose.yml"] + (["--profile", profile] if profile else [])
    env = {**{k: v for k, v in os.environ.items() if k != "QDRANT_API_KEY"}, **COMPOSE_ENV}
    ok = subprocess.run([*args, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


def test_every_port_binds_loopback_and_every_image_is_pinned() -> None:
    services = _compose()["services"]
    assert {"qdrant", "embcluster", "qdrant-node-1", "qdrant-node-2", "qdrant-node-3",
            "embcluster-distributed"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and any(ch.isdigit() for ch in tag), f"{name}: {image} not pinned"
        if "build" in svc:  # our own image carries the package version
            version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
            assert version and image == f"embcluster:{version.group(1)}"


def test_the_service_uses_the_qdrant_server_backend_with_settings_that_exist() -> None:
    from embcluster.config import Settings

    services = _compose()["services"]
    for name in ("embcluster", "embcluster-distributed"):
        env = _env(services[name])
        assert env["EMBCLUSTER_STORE"] == "qdrant"
        assert env["EMBCLUSTER_QDRANT_URL"].startswith("http://qdrant")
        assert env["EMBCLUSTER_QDRANT_API_KEY"].startswith("${QDRANT_API_KEY")
        for key in env:  # a misspelt variable would be ignored silently... except by extra=forbid here
            assert key.startswith("EMBCLUSTER_") and key.removeprefix("EMBCLUSTER_").lower() in Settings.model_fields
    dist = _env(services["embcluster-distributed"])
    assert dist["EMBCLUSTER_QDRANT_SHARD_NUMBER"] == "3" and dist["EMBCLUSTER_QDRANT_REPLICATION_FACTOR"] == "2"
    nodes = [services[f"qdrant-node-{i}"] for i in (1, 2, 3)]
    for i, node in enumerate(nodes, start=1):
        assert node["profiles"] == ["distributed"]
        env = _env(node)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true" and env["QDRANT__CLUSTER__P2P__PORT"] == "6335"
        assert f"http://qdrant-node-{i}:6335" in node["command"]
        if i > 1:
            assert node["command"][node["command"].index("--bootstrap") + 1] == "http://qdrant-node-1:6335"
    assert "profiles" not in services["qdrant"] and "profiles" not in services["embcluster"]


def test_dockerfile_pins_cpu_torch_runs_unprivileged_and_checks_health() -> None:
    from embcluster.config import Settings

    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim")
    assert "pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in text
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()  # the same pin as the package
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines) and '"embcluster", "health"' in text
    assert 'VOLUME ["/data"]' in text and "EXPOSE 50051 9464" in text
    for key in re.findall(r"\b(EMBCLUSTER_[A-Z_]+)=", text):
        assert key.removeprefix("EMBCLUSTER_").lower() in Settings.model_fields, key
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored and "embcluster-data" in ignored
