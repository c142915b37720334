"""The error hierarchy shared by the embedded engine and the gRPC client.

Each class maps 1:1 to a gRPC status code (``grpc_code``), so a client raises exactly the
exception the embedded engine would have raised for the same call.
"""

from __future__ import annotations


class VecdbError(Exception):
    """Base class of every error vecdb raises on purpose."""

    grpc_code = "UNKNOWN"


class InvalidArgument(VecdbError, ValueError):
    """The request is malformed: wrong dimension, non-finite floats, bad name, bad filter..."""

    grpc_code = "INVALID_ARGUMENT"


class NotFound(VecdbError, KeyError):
    """A collection (or tenant) that does not exist, or is not visible to the caller."""

    grpc_code = "NOT_FOUND"

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class AlreadyExists(VecdbError):
    """A collection with that name already exists."""

    grpc_code = "ALREADY_EXISTS"


class FailedPrecondition(VecdbError):
    """The system is not in a state that allows the call (closed database, untrained index...)."""

    grpc_code = "FAILED_PRECONDITION"


class ResourceExhausted(VecdbError):
    """Out of disk, over a memory budget, or over a request limit."""

    grpc_code = "RESOURCE_EXHAUSTED"


class DataLoss(VecdbError):
    """Stored data failed verification (checksum, framing). Names the file and offset."""

    grpc_code = "DATA_LOSS"


class Unavailable(VecdbError):
    """The service is starting, recovering or shutting down; safe to retry idempotent calls."""

    grpc_code = "UNAVAILABLE"


class PermissionDenied(VecdbError):
    """The caller's key does not allow this call."""

    grpc_code = "PERMISSION_DENIED"


class Unauthenticated(VecdbError):
    """No key, or an unknown key, where the server requires one."""

    grpc_code = "UNAUTHENTICATED"


class DeadlineExceeded(VecdbError):
    """The call's deadline passed before it finished."""

    grpc_code = "DEADLINE_EXCEEDED"


class Internal(VecdbError):
    """A bug: an invariant did not hold. Please report it."""

    grpc_code = "INTERNAL"


ERRORS_BY_CODE: dict[str, type[VecdbError]] = {
    cls.grpc_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        DataLoss,
        Unavailable,
        PermissionDenied,
        Unauthenticated,
        DeadlineExceeded,
        Internal,
    )
}
