"""Server reflection under both names: ``grpc.reflection.v1`` (what current tools ask first) and ``v1alpha``.

grpcio-reflection (1.85) implements only ``grpc.reflection.v1alpha.ServerReflection``. Its
successor ``grpc.reflection.v1.ServerReflection`` has the same messages with the same field
numbers under another package, so the same servicer answers both: the v1 method is registered
with v1alpha's (wire-identical) serializers, and a v1 descriptor derived from v1alpha's (package
and type names rewritten) is added to the descriptor pool, so that reflection can describe
the v1 service too (``grpcurl describe grpc.reflection.v1.ServerReflection``).
"""

from __future__ import annotations

from typing import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as alpha
from grpc_reflection.v1alpha import reflection_pb2_grpc as alpha_grpc

__all__ = ["V1_FILE", "V1_SERVICE_NAME", "V1ALPHA_SERVICE_NAME", "enable_reflection"]

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"
_ALPHA_PACKAGE = alpha.DESCRIPTOR.package  # grpc.reflection.v1alpha
_V1_PACKAGE = V1_SERVICE_NAME.rsplit(".", 1)[0]


def _v1_file_proto() -> descriptor_pb2.FileDescriptorProto:
    """v1alpha's file descriptor under the v1 package (types, service and file name renamed)."""
    proto = descriptor_pb2.FileDescriptorProto()
    alpha.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = V1_FILE, _V1_PACKAGE
    proto.ClearField("options")  # v1alpha's language options (e.g. its Java package) are not v1's

    def renamed(type_name: str) -> str:
        prefix = f".{_ALPHA_PACKAGE}."
        return f".{_V1_PACKAGE}.{type_name[len(prefix):]}" if type_name.startswith(prefix) else type_name

    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # message-typed fields only (setting it on a string is invalid)
                field.type_name = renamed(field.type_name)
    for service in proto.service:
        for method in service.method:
            method.input_type, method.output_type = renamed(method.input_type), renamed(method.output_type)
    return proto


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(V1_FILE)
    except KeyError:
        pool.Add(_v1_file_proto())


def enable_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serve reflection of ``service_names`` (plus both reflection services) over v1 and v1alpha.

    Both are streaming calls, so each open one holds a stream slot (``max_open_streams``) like
    any other stream: the stream-limit interceptor wraps every handler, these included.
    """
    pool = descriptor_pool.Default()  # where the generated stubs registered their files
    _register_v1_descriptor(pool)
    servicer = reflection.ReflectionServicer((*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME), pool=pool)
    alpha_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo, request_deserializer=alpha.ServerReflectionRequest.FromString,
        response_serializer=alpha.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE_NAME,
                                                                          {"ServerReflectionInfo": v1}),))
