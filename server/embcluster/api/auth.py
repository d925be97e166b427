"""The authentication interceptor: API keys from ``authorization: Bearer <key>``, scopes per RPC,
collection restrictions.

Installed by :class:`~embcluster.api.server.GrpcServer` only when keys are configured, between the
observability interceptor (which then counts refused calls by their code) and the error
interceptor, so a refused call never reaches the stream cap or the servicer. Health stays open.

What each RPC needs (scopes are cumulative: read < write < admin) is :data:`RULES`; a method not
in it (another service) needs admin, except health (open) and reflection, v1 and v1alpha (read).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import grpc

from ..auth import KeyRing, Principal
from ..errors import NotFound
from .reflection import V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME
from .streams import is_non_blocking

__all__ = ["AuthInterceptor", "RULES", "AUTH_METADATA_KEY"]

AUTH_METADATA_KEY = "authorization"
_SERVICE = "/embcluster.v1.Embcluster/"
_OPEN = "/grpc.health.v1.Health/"
_REFLECTION = (f"/{V1_SERVICE_NAME}/", f"/{V1ALPHA_SERVICE_NAME}/")  # both reflection protocols: read

#: RPC name -> (scope it needs, the request field naming its collection, or None).
RULES: dict[str, tuple[str, str | None]] = {
    # read: look at collections, points, clusters, models, runs; classify and search
    "GetCollection": ("read", "name"),
    "ListCollections": ("read", None),  # filtered to the key's collections
    "GetPoint": ("read", "collection"),
    "ListClusterMembers": ("read", "collection"),
    "ListAnomalies": ("read", "collection"),
    "ListPoints": ("read", "collection"),
    "GetClusteringRun": ("read", "collection"),
    "WatchClusteringRun": ("read", "collection"),
    "ListClusters": ("read", "collection"),
    "GetCluster": ("read", "collection"),
    "GetDrift": ("read", "collection"),
    "ListModels": ("read", "collection"),
    "GetModel": ("read", "collection"),
    "Classify": ("read", "collection"),
    "Search": ("read", "collection"),
    "WatchAnomalies": ("read", "collection"),
    "WatchClusterEvents": ("read", "collection"),
    "ExplainPoint": ("read", "collection"),
    "InferSchema": ("read", None),  # no collection: proposes a schema from the samples sent
    "GetReport": ("read", "collection"),
    # write: change the points and models of an existing collection
    "Ingest": ("write", "collection"),
    "IngestStream": ("write", "collection"),  # checked on every message
    "DeletePoints": ("write", "collection"),
    "StartClustering": ("write", "collection"),
    "CancelClusteringRun": ("write", "collection"),
    "RollbackModel": ("write", "collection"),
    "FitFeaturizer": ("write", "collection"),
    "UpdateCollection": ("write", "name"),
    # admin: make and remove collections, files on the server's machine
    "CreateCollection": ("admin", "name"),
    "AttachCollection": ("admin", "name"),
    "DeleteCollection": ("admin", "name"),
    "ExportCollection": ("admin", "collection"),
    "ImportCollection": ("admin", "name"),  # a restricted key must name an allowed collection
}
_CREATES = frozenset({"CreateCollection", "AttachCollection", "ImportCollection"})


def _hidden(name: str) -> str:
    return f"collection {name[:200]!r} not found"  # what a missing collection says: nothing to probe


def _replace(handler: Any, make: Callable[[Callable[..., Any], bool], Callable[..., Any]]) -> Any:
    """The same kind of handler (same (de)serializers) around ``make(behaviour, streaming_response)``."""
    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(make(handler.unary_unary, False), **kw)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(make(handler.stream_unary, False), **kw)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(make(handler.unary_stream, True), **kw)
    return grpc.stream_stream_rpc_method_handler(make(handler.stream_stream, True), **kw)


def _deny(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    def make(_: Any, streaming: bool) -> Callable[..., Any]:
        if streaming:
            def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                context.abort(code, message)
                yield  # pragma: no cover - abort raises
            return refuse_stream

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(code, message)
        return refuse
    return _replace(handler, make)


class AuthInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED without a known key, PERMISSION_DENIED without the scope, and a
    collection-restricted key confined to its collections (others: NOT_FOUND, or PERMISSION_DENIED
    when it would create one)."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def principal(self, metadata: Any) -> Principal | None:
        """The caller of a call's metadata (None: no key, or an unknown one)."""
        for key, value in metadata or ():
            if key == AUTH_METADATA_KEY:
                return self.keys.from_header(value if isinstance(value, str) else None)
        return None

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(_OPEN) or is_non_blocking(handler):
            return handler
        principal = self.principal(handler_call_details.invocation_metadata)
        if principal is None:
            return _deny(handler, grpc.StatusCode.UNAUTHENTICATED,
                         "a valid API key is required: send metadata 'authorization: Bearer <key>'")
        name = method[len(_SERVICE):] if method.startswith(_SERVICE) else ""
        scope, field = RULES.get(name) or (("read", None) if method.startswith(_REFLECTION) else ("admin", None))
        if not principal.can(scope):
            return _deny(handler, grpc.StatusCode.PERMISSION_DENIED,
                         f"API key {principal.name!r} lacks the {scope!r} scope that {name or method} needs")
        if principal.collections is None:
            return handler
        if name == "ListCollections":
            return _replace(handler, lambda behaviour, _: _filtered(behaviour, principal))
        if field is None:
            return handler
        return _replace(handler, lambda behaviour, streaming: _confined(behaviour, streaming, principal, name, field))


def _filtered(behaviour: Callable[..., Any], principal: Principal) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        response = behaviour(request, context)
        kept = [c for c in response.collections if principal.sees(c.name)]
        del response.collections[:]
        response.collections.extend(kept)
        return response
    return wrapped


def _confined(behaviour: Callable[..., Any], streaming: bool, principal: Principal, name: str,
              field: str) -> Callable[..., Any]:
    creates = name in _CREATES

    def check(request: Any, context: grpc.ServicerContext) -> None:
        collection = getattr(request, field)
        if principal.sees(collection):
            return
        if creates:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"API key {principal.name!r} may only use collections "
                          f"{sorted(principal.collections or ())}; name one of them")
        context.abort(grpc.StatusCode.NOT_FOUND, _hidden(collection))

    if name == "IngestStream":  # a stream of requests: every message is checked as it arrives
        def each(requests: Iterator[Any]) -> Iterator[Any]:
            for request in requests:
                if not principal.sees(request.collection):
                    raise NotFound(_hidden(request.collection))  # ends the stream, mapped by ErrorInterceptor
                yield request

        def stream_in(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            yield from behaviour(each(request_iterator), context)
        return stream_in
    if streaming:
        def stream_out(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            check(request, context)
            yield from behaviour(request, context)
        return stream_out

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        check(request, context)
        return behaviour(request, context)
    return unary
