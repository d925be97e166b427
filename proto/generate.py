"""Regenerate the committed Python stubs from ``proto/``.

Usage: ``python proto/generate.py [OUT_DIR]`` (default: ``server/embcluster/api/v1``).
Uses the pinned ``grpcio-tools`` (see ``pyproject.toml``); a test regenerates into a
temporary directory and fails if the result differs from what is committed.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.85.1"
ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTOS = ["embcluster/v1/embcluster.proto"]
DEFAULT_OUT = ROOT / "server" / "embcluster" / "api" / "v1"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into ``out_dir`` and make the stubs' imports package-relative."""
    found = metadata.version("grpcio-tools")
    if found != GRPCIO_TOOLS_VERSION:
        raise SystemExit(f"grpcio-tools=={GRPCIO_TOOLS_VERSION} required, found {found}")
    from grpc_tools import protoc  # imported late: only needed here

    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc", f"-I{PROTO_DIR}", f"-I{include}",
            f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *PROTOS,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for src in sorted((Path(tmp) / "embcluster" / "v1").iterdir()):
            text = src.read_text()
            # protoc writes absolute imports (embcluster.v1); the stubs live in embcluster.api.v1.
            text = re.sub(r"^from embcluster\.v1 import ", "from . import ", text, flags=re.M)
            dst = out_dir / src.name
            dst.write_text(text)
            written.append(dst)
    init = out_dir / "__init__.py"
    init.write_text('"""Generated protobuf and gRPC stubs for embcluster.v1 (do not edit)."""\n')
    return [init, *written]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for path in generate(target):
        print(path)
    shutil.rmtree(target / "__pycache__", ignore_errors=True)
