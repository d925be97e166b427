"""Generate ``embcluster_client/aio.py`` (the asyncio client) from ``client.py`` (the blocking one).

The two clients have the same methods, arguments and docstrings; only the calls differ (``await``
on unary calls, async generators for the paged iterators, streams returned as they are). So
``aio.py`` is not kept by hand: edit ``client.py`` and run::

    python clients/python/generate_aio.py

``tests/unit/test_generated_aio.py`` fails when the committed ``aio.py`` is not what this script
produces. The transformation is textual and deliberately small; ``client.py`` is written so that
it applies: one stub call per line, its result bound or returned (``(call).attr`` in
parentheses), paged iterators as generators over ``page.points``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "embcluster_client"
SOURCE = HERE / "client.py"
TARGET = HERE / "aio.py"

HEADER = "# Generated from client.py by clients/python/generate_aio.py: do not edit by hand.\n"

# Text that says "blocking" in client.py and "asyncio" in aio.py (docstrings, names, imports).
REPLACEMENTS: list[tuple[str, str]] = [
    ('"""Synchronous client for the embcluster.v1 gRPC service."""',
     '"""Asyncio client for the embcluster.v1 gRPC service (same methods as ``EmbclusterClient``)."""'),
    ("import logging\n", "import asyncio\nimport logging\n"),
    ("from collections.abc import Callable, Iterable, Iterator, Mapping",
     "from collections.abc import AsyncIterator, Callable, Iterable, Mapping"),
    ("import grpc\n", "import grpc\nimport grpc.aio\n"),
    ('__all__ = ["EmbclusterClient"]', '__all__ = ["AsyncEmbclusterClient"]'),
    ("class EmbclusterClient:", "class AsyncEmbclusterClient:"),
    ('"""Blocking client for an embcluster server.', '"""Asyncio client for an embcluster server.'),
    ("gRPC errors are not wrapped: calls raise ``grpc.RpcError`` with the server's status code.",
     "gRPC errors are not wrapped: calls raise ``grpc.aio.AioRpcError`` (a ``grpc.RpcError``)\n"
     "    with the server's status code."),
    ("""        with EmbclusterClient("127.0.0.1:50051") as client:
            client.create_collection("docs")
            client.ingest("docs", ["first text", {"id": "sku-1", "text": "second"}])
            client.cluster("docs", k=8)""",
     """        async with AsyncEmbclusterClient("127.0.0.1:50051") as client:
            await client.create_collection("docs")
            await client.ingest("docs", ["first text", {"id": "sku-1", "text": "second"}])
            await client.cluster("docs", k=8)"""),
    ("channel: grpc.Channel | None", "channel: grpc.aio.Channel | None"),
    ("channel: An existing channel to use instead of opening one; ``close()``\n"
     "                leaves a channel given here open.",
     "channel: An existing ``grpc.aio`` channel to use instead of opening one;\n"
     "                ``close()`` leaves a channel given here open."),
    ("from ._channel import Security, open_channel\n", "from ._channel import Security, open_aio_channel\n"),
    ("or open_channel(target", "or open_aio_channel(target"),
    ("def __enter__(self) -> EmbclusterClient:", "def __aenter__(self) -> AsyncEmbclusterClient:"),
    ("def __exit__(", "def __aexit__("),
    ("on_progress: Called with the run after each poll.",
     "on_progress: Plain (non-async) callable called with the run after each poll."),
    ("            for run in client.watch_run(", "            async for run in client.watch_run("),
    ("Iterator[", "AsyncIterator["),
    ("time.sleep(", "await asyncio.sleep("),
]

_DEF = re.compile(r"^    def (\w+)\(")
_AWAITED = re.compile(r"(?<![\w.])(self\._stub\.\w+\(|self\._health\.\w+\(|self\._channel\.close\()")


def _plan(source: str) -> tuple[set[str], set[str]]:
    """(methods that become ``async def``, those among them that are generators)."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EmbclusterClient")
    asynchronous, generators = set(), set()
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name in ("__init__",) or fn.name.startswith("_s"):
            continue
        body = list(ast.walk(fn))
        returns_stream = any(isinstance(n, ast.Return) and isinstance(n.value, ast.Call)
                             and "_stub" in ast.unparse(n.value.func) and "timeout=self._timeout" not in
                             ast.unparse(n.value) and not ast.unparse(n.value).startswith("self._stub.Search")
                             for n in body) and fn.returns is not None and "Iterator" in ast.unparse(fn.returns)
        if returns_stream:
            continue  # a streaming call: returned as it is (an async iterator in grpc.aio)
        asynchronous.add(fn.name)
        if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in body):
            generators.add(fn.name)
    return asynchronous, generators


def generate(source: str) -> str:
    """The text of ``aio.py`` for the text of ``client.py``."""
    asynchronous, _ = _plan(source)
    calls = re.compile(r"(?<![\w.])(self\.(?:" + "|".join(sorted(asynchronous)) + r")\()")
    out: list[str] = []
    current = ""
    for line in source.splitlines():
        m = _DEF.match(line)
        if m:
            current = m.group(1)
            if current in asynchronous or current in ("__enter__", "__exit__"):
                line = line.replace("    def ", "    async def ", 1)
        elif current in asynchronous or current in ("__exit__",):
            stripped = line.lstrip()
            if not stripped.startswith(("#", '"""')) and '"""' not in line:
                line = _AWAITED.sub(r"await \1", line)
                line = calls.sub(r"await \1", line)
                if re.search(r"await self\.\w+(\.\w+)?\([^()]*(\([^()]*\))?[^()]*\)\.\w", line):
                    raise SystemExit(f"generate_aio: bind the call's result before using it: {line.strip()}")
            m_yield = re.match(r"^(\s*)yield from (.+)$", line)
            if m_yield:
                indent, what = m_yield.groups()
                out.append(f"{indent}for item in {what}:")
                line = f"{indent}    yield item"
        out.append(line)
    text = "\n".join(out) + "\n"
    for old, new in REPLACEMENTS:
        if old not in text:
            raise SystemExit(f"generate_aio: {old!r} not found in client.py; update the script")
        text = text.replace(old, new)
    first_end = text.index('"""', 3) + 3  # after the module docstring
    return text[:first_end] + "\n" + HEADER.rstrip("\n") + text[first_end:]


def main() -> int:
    TARGET.write_text(generate(SOURCE.read_text()))
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
