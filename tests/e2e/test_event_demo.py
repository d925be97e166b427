"""`embcluster demo --kind event`: real Lending Club loans as events, then user profiles, through a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_event_demo_clusters_loans_and_separates_profiles() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "embcluster.cli", "demo", "--kind", "event", "-n", "300", "-k", "4"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "\r" not in out + proc.stderr and "ingest demo-loans: 300/300 loans 100.0%" in proc.stderr
    assert "annual_inc: numeric (log)" in out  # InferSchema's proposal is printed with its reasons
    assert "ingested 300 loans as events" in out
    assert "featurizer v2 fitted on every loan" in out  # v1 provisional, v2 from FitFeaturizer
    start = out.index("cluster  size")
    table = out[start:out.index("\n\n", start)]
    sizes = [int(line.split()[1]) for line in table.splitlines()[1:] if line[:7].strip().isdigit()]
    assert len(sizes) == 4 and sum(sizes) == 300
    profiles = re.findall(r"cluster \d+: (\d+) users  \{'([^']+)': (\d+)\}", out)
    assert sorted((int(n), kind) for n, kind, _ in profiles) == [(40, "daytime, small"), (40, "night, large amounts")]
