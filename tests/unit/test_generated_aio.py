"""The committed asyncio client is exactly what the generator produces from the blocking client."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate_aio", CLIENT / "generate_aio.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def test_regenerating_aio_changes_nothing() -> None:
    gen = _generator()
    expected = gen.generate((CLIENT / "embcluster_client" / "client.py").read_text())
    assert (CLIENT / "embcluster_client" / "aio.py").read_text() == expected, (
        "aio.py is stale: run `python clients/python/generate_aio.py` and commit the result"
    )


def test_a_change_to_the_blocking_client_shows() -> None:
    gen = _generator()
    source = (CLIENT / "embcluster_client" / "client.py").read_text()
    changed = source.replace('"""Returns the served model\'s version and clusters."""',
                             '"""Returns the clusters."""')
    assert changed != source
    assert gen.generate(changed) != (CLIENT / "embcluster_client" / "aio.py").read_text()
