"""`embcluster demo --kind image_metadata`: real Phosphor icon metadata through a real server process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_image_demo_clusters_icons() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "embcluster.cli", "demo", "--kind", "image_metadata", "-n", "200", "-k", "4"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "ingested 200 Phosphor icons (image metadata)" in out
    assert "model v1: k=4, 200 points labelled" in out
    table = out[out.index("cluster  size"):out.index("top anomalies")]
    sizes = [int(line.split()[1]) for line in table.splitlines()[1:] if line[:7].strip().isdigit()]
    assert len(sizes) == 4 and sum(sizes) == 200
    assert ". tags: " in table  # members are shown by their rendering
    anomalies = out[out.index("top anomalies"):].splitlines()[1:]
    assert anomalies and all(line.split()[4].startswith("ph-") for line in anomalies)  # the stored ids
