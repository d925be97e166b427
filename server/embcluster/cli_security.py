"""``embcluster keys create`` and the security flags of every command that talks to a server.

A client command reads its API key from ``--api-key-file`` or ``EMBCLUSTER_API_KEY`` (never a
flag holding the key itself: command lines are visible to every user of the machine).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "add_client_flags", "client_options", "run", "API_KEY_ENV"]

API_KEY_ENV = "EMBCLUSTER_API_KEY"


def add_parsers(sub: Any) -> None:
    """Add ``keys create`` to ``embcluster``'s sub-parsers."""
    keys = sub.add_parser("keys", help="make API keys (the server stores only their hashes)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="print a new key and the line to add to the server's key file")
    create.add_argument("--name", required=True, help="who holds the key ([A-Za-z0-9_.@-], shown in errors)")
    create.add_argument("--scopes", default="read",
                        help="comma-separated: read, write, admin (each includes the ones before; default read)")
    create.add_argument("--collections", default="",
                        help="comma-separated collections the key is confined to (default: all)")


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    """TLS and API-key flags of a command that connects to a server."""
    g = parser.add_argument_group("connection security")
    g.add_argument("--api-key-file", type=Path, help=f"file holding the API key (default: env {API_KEY_ENV})")
    g.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca-cert/--client-cert)")
    g.add_argument("--ca-cert", type=Path, help="PEM CA that signed the server's certificate (default: system roots)")
    g.add_argument("--client-cert", type=Path, help="PEM client certificate (mTLS; with --client-key)")
    g.add_argument("--client-key", type=Path, help="PEM private key of --client-cert")
    g.add_argument("--server-name", help="name on the server's certificate, when not the host of --server")


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``EmbclusterClient`` from the flags (and ``EMBCLUSTER_API_KEY``)."""
    key_file = getattr(args, "api_key_file", None)
    api_key = key_file.read_text().strip() if key_file else os.environ.get(API_KEY_ENV) or None
    return {"api_key": api_key, "tls": bool(getattr(args, "tls", False)),
            "ca_cert": getattr(args, "ca_cert", None), "client_cert": getattr(args, "client_cert", None),
            "client_key": getattr(args, "client_key", None), "server_name": getattr(args, "server_name", None)}


def run(args: argparse.Namespace) -> int:
    """``keys create``: the key (shown once) on stderr-free stdout, then its key-file line."""
    from pydantic import ValidationError

    from .auth import ApiKeyRecord, hash_key, key_line, new_key

    key = new_key()
    try:
        record = ApiKeyRecord(name=args.name, sha256=hash_key(key),
                              scopes=tuple(s.strip() for s in args.scopes.split(",") if s.strip()),
                              collections=tuple(c.strip() for c in args.collections.split(",") if c.strip()))
    except ValidationError as exc:
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"embcluster: {why}", file=sys.stderr)
        return 2
    print(f"key: {key}")
    print("# give the key to its holder (it is not stored anywhere); add this line to the key file "
          "(EMBCLUSTER_API_KEYS_FILE):")
    print(key_line(record))
    return 0
