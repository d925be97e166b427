"""Generate the asyncio clients from the blocking ones: ``embcluster_client/aio.py`` from
``client.py`` (the protobuf client) and ``pythonic_aio.py`` from ``pythonic.py`` (the Pythonic one).

Each pair has the same methods, arguments and docstrings; only the calls differ (``await`` on
unary calls, async generators for the paged iterators, streams returned as they are). So the
asyncio files are not kept by hand: edit ``client.py`` or ``pythonic.py`` and run::

    python clients/python/generate_aio.py

``tests/unit/test_generated_aio.py`` fails when a committed asyncio file is not what this script
produces. The transformation is textual and deliberately small; the blocking clients are written
so that it applies: one call per line, its result bound or returned (``(call).attr`` in
parentheses), paged iterators as generators over ``page.points`` (``client.py``) or ``for`` loops
over the protobuf client's iterators (``pythonic.py``).
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


def _shared(blocking: str, asynchronous: str) -> list[tuple[str, str]]:
    """Replacements both generated clients need (``blocking`` and ``asynchronous``: the class names)."""
    return [
        ("from collections.abc import Callable, Iterable, Iterator, Mapping",
         "from collections.abc import AsyncIterator, Callable, Iterable, Mapping"),
        ("import grpc\n", "import grpc\nimport grpc.aio\n"),
        (f'__all__ = ["{blocking}"]', f'__all__ = ["{asynchronous}"]'),
        (f"class {blocking}:", f"class {asynchronous}:"),
        (f"""        with {blocking}("127.0.0.1:50051") as client:
            client.create_collection("docs")
            client.ingest("docs", ["first text", {{"id": "sku-1", "text": "second"}}])
            client.cluster("docs", k=8)""",
         f"""        async with {asynchronous}("127.0.0.1:50051") as client:
            await client.create_collection("docs")
            await client.ingest("docs", ["first text", {{"id": "sku-1", "text": "second"}}])
            await client.cluster("docs", k=8)"""),
        ("channel: grpc.Channel | None", "channel: grpc.aio.Channel | None"),
        ("def __exit__(", "def __aexit__("),
        ("on_progress: Called with the run after each poll.",
         "on_progress: Plain (non-async) callable called with the run after each poll."),
    ]


# Text that says "blocking" in client.py and "asyncio" in aio.py (docstrings, names, imports).
REPLACEMENTS: list[tuple[str, str]] = [
    *_shared("EmbclusterClient", "AsyncEmbclusterClient"),
    ('"""Synchronous client for the embcluster.v1 gRPC service."""',
     '"""Asyncio client for the embcluster.v1 gRPC service (same methods as ``EmbclusterClient``)."""'),
    ("import logging\n", "import asyncio\nimport logging\n"),
    ('"""Blocking client for an embcluster server.', '"""Asyncio client for an embcluster server.'),
    (":class:`~embcluster_client.Client` wraps it", ":class:`~embcluster_client.AsyncClient` wraps it"),
    ("channel: An existing channel to use instead of opening one; ``close()``\n"
     "                leaves a channel given here open.",
     "channel: An existing ``grpc.aio`` channel to use instead of opening one;\n"
     "                ``close()`` leaves a channel given here open."),
    ("from ._channel import Security, open_channel\n", "from ._channel import Security, open_aio_channel\n"),
    ("from ._typed_calls import typed_errors\n", "from ._typed_calls import typed_errors_aio\n"),
    ("typed = typed_errors(", "typed = typed_errors_aio("),
    ("or open_channel(target", "or open_aio_channel(target"),
    ("def __enter__(self) -> EmbclusterClient:", "def __aenter__(self) -> AsyncEmbclusterClient:"),
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


# The Pythonic client (pythonic.py -> pythonic_aio.py): its methods call the protobuf client's
# (``self.grpc.<method>(``); a call is awaited where AsyncEmbclusterClient's method is a coroutine,
# iterated with ``async for`` where it is an async generator, and left as it is for streams.
PYTHONIC_SOURCE = HERE / "pythonic.py"
PYTHONIC_TARGET = HERE / "pythonic_aio.py"

PYTHONIC_HEADER = "# Generated from pythonic.py by clients/python/generate_aio.py: do not edit by hand.\n"

PYTHONIC_REPLACEMENTS: list[tuple[str, str]] = [
    *_shared("Client", "AsyncClient"),
    ('"""The Pythonic client: the service\'s calls returning :mod:`~embcluster_client.models`."""',
     '"""The Pythonic asyncio client (same methods as ``Client``), returning :mod:`~embcluster_client.models`."""'),
    ("from .client import EmbclusterClient\n", "from .aio import AsyncEmbclusterClient\n"),
    ("from .streams import Stream\n", "from .streams import AsyncStream\n"),
    ('"""Client for an embcluster server that speaks Python', '"""Asyncio client for an embcluster server that speaks Python'),
    ("protobuf client :class:`~embcluster_client.EmbclusterClient`",
     "protobuf client :class:`~embcluster_client.AsyncEmbclusterClient`"),
    ("(the arguments are ``EmbclusterClient``'s)", "(the arguments are ``AsyncEmbclusterClient``'s)"),
    ("client: EmbclusterClient | None", "client: AsyncEmbclusterClient | None"),
    ("else EmbclusterClient(", "else AsyncEmbclusterClient("),
    ("def __enter__(self) -> Client:", "async def __aenter__(self) -> AsyncClient:"),
    (") -> Iterator[Point]:", ") -> AsyncIterator[Point]:"),
    ("-> Stream[", "-> AsyncStream["),
    ("return Stream(", "return AsyncStream("),
]


def generate_pythonic(source: str, client_source: str) -> str:
    """The text of ``pythonic_aio.py`` for the texts of ``pythonic.py`` and ``client.py``."""
    asynchronous, generators = _plan(client_source)
    awaited = asynchronous - generators
    call = re.compile(r"(?<![\w.])self\.grpc\.(\w+)\(")
    out: list[str] = []
    method: list[str] = []

    def flush() -> None:
        body = "\n".join(method[1:])
        if method and ("await " in body or "async for " in body):
            method[0] = method[0].replace("    def ", "    async def ", 1)
        out.extend(method)
        method.clear()

    for line in source.splitlines():
        if _DEF.match(line) or (line and not line.startswith(" ")):
            flush()
            if _DEF.match(line):
                method.append(line)
                continue
        if not method:
            out.append(line)
            continue
        stripped = line.lstrip()
        if not stripped.startswith(("#", '"""')) and '"""' not in line:
            line = re.sub(r"(?<![\w.])self\.close\(\)", "await self.close()", line)
            for name in set(call.findall(line)):
                if name in awaited:
                    line = re.sub(rf"(?<![\w.])self\.grpc\.{name}\(", f"await self.grpc.{name}(", line)
                elif name in generators:
                    line = re.sub(rf"^(\s*)for (.+) in self\.grpc\.{name}\(", rf"\1async for \2 in self.grpc.{name}(",
                                  line)
                    if "async for" not in line:
                        raise SystemExit(f"generate_aio: iterate {name} in a for statement: {line.strip()}")
        method.append(line)
    flush()
    text = "\n".join(out) + "\n"
    for old, new in PYTHONIC_REPLACEMENTS:
        if old not in text:
            raise SystemExit(f"generate_aio: {old!r} not found in pythonic.py; update the script")
        text = text.replace(old, new)
    first_end = text.index('"""', 3) + 3  # after the module docstring
    return text[:first_end] + "\n" + PYTHONIC_HEADER.rstrip("\n") + text[first_end:]


def main() -> int:
    client_source = SOURCE.read_text()
    TARGET.write_text(generate(client_source))
    print(f"wrote {TARGET}")
    PYTHONIC_TARGET.write_text(generate_pythonic(PYTHONIC_SOURCE.read_text(), client_source))
    print(f"wrote {PYTHONIC_TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
