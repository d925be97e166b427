"""Typed client errors: one class per gRPC status code, gRPC's own accessors kept."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from embcluster_client import Client, RunFailed, errors, models, pb
from embcluster_client.convert import to_model
from embcluster_client.errors import EmbclusterError, from_rpc_error, from_status


class _FakeRpcError(grpc.RpcError):
    """What grpc raises for a failed call: code(), details() and the call's metadata."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return (("x-request-id", "abc"),)

    def debug_error_string(self) -> str:
        return "debug"


def _camel(code: grpc.StatusCode) -> str:
    return "".join(part.title() for part in code.name.split("_"))


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name)
def test_each_status_code_has_its_class(code: grpc.StatusCode) -> None:
    cls = errors.error_class(code)
    assert cls.__name__ == _camel(code) and cls.STATUS is code
    assert issubclass(cls, EmbclusterError) and issubclass(cls, grpc.RpcError)
    assert cls.__name__ in errors.__all__
    exc = from_rpc_error(_FakeRpcError(code, f"why {code.name}"))
    assert type(exc) is cls
    assert exc.code() is code and exc.status is code
    assert exc.details() == exc.message == f"why {code.name}"
    assert str(exc) == f"{code.name}: why {code.name}"
    assert exc.trailing_metadata() == (("x-request-id", "abc"),) and exc.debug_error_string() == "debug"


def test_from_status_by_name_and_the_already_typed() -> None:
    exc = from_status("FAILED_PRECONDITION", "a run is in progress")
    assert isinstance(exc, errors.FailedPrecondition) and exc.message == "a run is in progress"
    assert exc.trailing_metadata() is None and exc.debug_error_string() == ""
    assert from_rpc_error(exc) is exc
    with pytest.raises(ValueError, match="'NOPE'"):
        from_status("NOPE", "x")
    assert isinstance(errors.NotFound("gone"), grpc.RpcError) and errors.NotFound("gone").code() is grpc.StatusCode.NOT_FOUND


def test_a_bare_rpc_error_is_unknown() -> None:
    exc = from_rpc_error(grpc.RpcError("no call attached"))
    assert type(exc) is errors.Unknown and exc.message == "no call attached"


class _FailingRuns:
    """A protobuf client whose runs all fail (what EmbclusterClient raises then)."""

    def wait_for_run(self, collection: str, run_id: str, **kwargs: Any) -> pb.ClusteringRun:
        raise RunFailed(pb.ClusteringRun(run_id=run_id, collection=collection, state=pb.RUN_STATE_FAILED,
                                         error="k=8 exceeds the sample"))

    def close(self) -> None:
        pass


def test_run_failed_carries_the_run_as_a_model_from_the_pythonic_client() -> None:
    client = Client(client=_FailingRuns())  # type: ignore[arg-type]
    with pytest.raises(RunFailed) as info:
        client.wait_for_run("docs", "r1")
    assert isinstance(info.value.run, models.ClusteringRun)
    assert info.value.run.state is models.RunState.FAILED
    assert str(info.value) == "clustering run r1 of 'docs' ended FAILED: k=8 exceeds the sample"
    low = RunFailed(pb.ClusteringRun(run_id="r1", collection="docs", state=pb.RUN_STATE_CANCELLED))
    assert str(low) == "clustering run r1 of 'docs' ended RUN_STATE_CANCELLED"
    as_model = RunFailed(to_model(low.run, models.ClusteringRun))  # type: ignore[arg-type]
    assert str(as_model) == "clustering run r1 of 'docs' ended CANCELLED"
