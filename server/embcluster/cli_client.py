"""What every command that talks to a server shares: where the server is, how to connect, and how
its errors are shown.

* ``--target HOST:PORT`` (alias ``--server``) on every such command, with the TLS and API-key
  flags of :mod:`embcluster.cli_security`; its default is ``EMBCLUSTER_TARGET`` (read once by
  ``embcluster.cli.main`` and handed over as ``args.env_target``), else ``127.0.0.1:50051``.
* :func:`guarded` runs a command and turns a gRPC error into one line,
  ``embcluster: CODE: the server's message``, on stderr and exit status 1 (an unreachable
  server says how to start one), and Ctrl-C into exit status 130, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable

from .cli_security import add_client_flags, client_options

if TYPE_CHECKING:
    import grpc
    from embcluster_client import EmbclusterClient

__all__ = ["positive_int", "DEFAULT_TARGET", "TARGET_ENV", "add_connection_flags", "target", "connect", "rpc_error_message",
           "guarded", "Handler"]

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_ENV = "EMBCLUSTER_TARGET"

Handler = Callable[[argparse.Namespace], int]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the message names the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_connection_flags(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """Add ``--target`` (alias ``--server``) and the TLS/API-key flags to a command's parser.

    Args:
        parser: The command's parser.
        default: What an absent ``--target`` means, for the help text (default: ``EMBCLUSTER_TARGET``,
            else ``127.0.0.1:50051``).
    """
    parser.add_argument("--target", "--server", dest="target", metavar="HOST:PORT",
                        help=f"the server (default: {default or f'env {TARGET_ENV}, else {DEFAULT_TARGET}'}; "
                             "--server is the same option)")
    add_client_flags(parser)


def target(args: argparse.Namespace) -> str:
    """The server a command talks to: ``--target``, else ``EMBCLUSTER_TARGET``, else ``127.0.0.1:50051``."""
    return str(args.target or getattr(args, "env_target", None) or DEFAULT_TARGET)


def connect(args: argparse.Namespace, *, timeout: float = 60.0) -> EmbclusterClient:
    """A client of :func:`target` with the command's TLS and API-key flags.

    Args:
        args: The parsed command line.
        timeout: Deadline of each call in seconds.
    """
    from embcluster_client import EmbclusterClient

    return EmbclusterClient(target(args), timeout=timeout, **client_options(args))


def rpc_error_message(exc: grpc.RpcError, where: str) -> str:
    """One line for a failed call: the status code's name and the server's message.

    A connection that could not be made says which target was unreachable and how to start a
    server, instead of gRPC's transport details alone.

    Args:
        exc: The error (its ``code()`` and ``details()``).
        where: The target the command talked to.
    """
    import grpc

    code = exc.code() if hasattr(exc, "code") else None
    details = str(exc.details() if hasattr(exc, "details") else exc)
    name = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
        return (f"cannot reach a server at {where} ({name}: {details}); start one with `embcluster serve` "
                f"or point --target (or {TARGET_ENV}) at a running one")
    return f"{name}: {details}"


def guarded(handler: Handler) -> Handler:
    """``handler`` with gRPC errors, unreadable files and Ctrl-C turned into a message and an exit status."""

    def run(args: argparse.Namespace) -> int:
        import grpc

        try:
            return handler(args)
        except grpc.RpcError as exc:
            print(f"embcluster: {rpc_error_message(exc, target(args))}", file=sys.stderr)
            return 1
        except OSError as exc:  # e.g. --api-key-file or a JSON spec that cannot be read
            print(f"embcluster: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"embcluster: {exc}",
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nembcluster: interrupted", file=sys.stderr)
            return 130

    run.__doc__ = handler.__doc__
    return run

