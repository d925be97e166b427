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


def test_regenerating_the_pythonic_aio_client_changes_nothing() -> None:
    gen = _generator()
    expected = gen.generate_pythonic((CLIENT / "embcluster_client" / "pythonic.py").read_text(),
                                     (CLIENT / "embcluster_client" / "client.py").read_text())
    assert (CLIENT / "embcluster_client" / "pythonic_aio.py").read_text() == expected, (
        "pythonic_aio.py is stale: run `python clients/python/generate_aio.py` and commit the result"
    )


def test_a_change_to_the_pythonic_client_shows() -> None:
    gen = _generator()
    source = (CLIENT / "embcluster_client" / "pythonic.py").read_text()
    changed = source.replace('"""Returns all collections."""', '"""Returns the collections."""')
    assert changed != source
    generated = gen.generate_pythonic(changed, (CLIENT / "embcluster_client" / "client.py").read_text())
    assert generated != (CLIENT / "embcluster_client" / "pythonic_aio.py").read_text()
    assert '"""Returns the collections."""' in generated


def test_the_pythonic_aio_client_awaits_every_call_that_is_a_coroutine() -> None:
    """Each AsyncClient method is a coroutine (or async generator) exactly where its
    AsyncEmbclusterClient method is, streams stay plain methods."""
    import inspect

    from embcluster_client import AsyncClient, AsyncEmbclusterClient, Client

    public = [n for n in vars(Client) if not n.startswith("_")]
    assert public == [n for n in vars(AsyncClient) if not n.startswith("_")]
    for name in public:
        ours, theirs = getattr(AsyncClient, name), getattr(AsyncEmbclusterClient, name)
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name
        assert inspect.isasyncgenfunction(ours) == inspect.isasyncgenfunction(theirs), name
