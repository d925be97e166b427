"""docker-compose.yml is valid (checked without a Docker engine, as Debian's docker-compose can)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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
