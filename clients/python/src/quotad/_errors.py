"""The exceptions of the quotad client."""

from __future__ import annotations

from typing import Any, Optional

import grpc

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from ._proto import errors_pb2

__all__ = [
    "QuotadError",
    "PoolNotFound",
    "PoolRemoved",
    "GrantNotFound",
    "CostTooLarge",
    "QuotaExhausted",
    "QueueFull",
    "RequestTooLarge",
    "InvalidArgument",
    "RequestIdReused",
    "Unavailable",
    "ShuttingDown",
    "Fenced",
    "NoOwner",
    "NotOwner",
    "NotGranted",
    "DeadlineExceeded",
    "ClientClosed",
    "NotSent",
    "ConcurrencyLimitUnsupported",
]

# The domain of quotad's google.rpc.ErrorInfo details, as errors.proto says.
ERROR_DOMAIN = "quotad"

class QuotadError(Exception):
    """Base class of every error raised by the quotad client.

    ``code`` is the gRPC status code quotad answered, when it answered one, and
    ``reason`` the name of its ErrorReason (errors.proto, e.g. "QUEUE_FULL"), or
    "" when it gave none.
    """

    def __init__(self, message: str, *, pool: str = "", code: Optional[grpc.StatusCode] = None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.pool = pool
        self.code = code
        self.reason = reason


class PoolNotFound(QuotadError, LookupError):
    """The pool is not configured (POOL_NOT_FOUND, gRPC NOT_FOUND)."""


class PoolRemoved(PoolNotFound):
    """The pool was removed from the configuration while the call waited
    (POOL_REMOVED, gRPC NOT_FOUND)."""


class GrantNotFound(QuotadError, LookupError):
    """No open lease or tombstone knows the grant (GRANT_NOT_FOUND, gRPC NOT_FOUND)."""


class CostTooLarge(QuotadError, ValueError):
    """The cost exceeds what one of the pool's buckets can ever hold, so it can
    never be granted (COST_TOO_LARGE, gRPC FAILED_PRECONDITION)."""


class QuotaExhausted(QuotadError):
    """The provider said the key's quota is spent (OpenAI's insufficient_quota, a
    spend limit): the pool fails fast until its quota_exhausted_for passes or its
    config changes (QUOTA_EXHAUSTED, gRPC FAILED_PRECONDITION)."""


class QueueFull(QuotadError):
    """The pool's wait queue is full, or its predicted wait exceeds the pool's
    max_queue_wait (QUEUE_FULL, gRPC RESOURCE_EXHAUSTED)."""


class RequestTooLarge(QuotadError, ValueError):
    """The request is larger than the node accepts (REQUEST_TOO_LARGE, or gRPC's
    own RESOURCE_EXHAUSTED refusal of a message over max-recv-bytes)."""


class InvalidArgument(QuotadError, ValueError):
    """The request is invalid: a negative cost, an empty pool name, absurd usage
    (INVALID_REQUEST, gRPC INVALID_ARGUMENT, or refused by the client before
    sending)."""


class RequestIdReused(InvalidArgument):
    """A request id came back with a different cost or tenant than the call it
    first named (REQUEST_ID_REUSED, gRPC INVALID_ARGUMENT)."""


class Unavailable(QuotadError, ConnectionError):
    """No quotad node could be reached within the client's unavailable timeout
    (and the client does not fail open). ``reason`` is the last node's, if it
    gave one; the subclasses below name it."""


class ShuttingDown(Unavailable):
    """The last node tried was shutting down (SHUTTING_DOWN, gRPC UNAVAILABLE)."""


class Fenced(Unavailable):
    """The last node tried owns the pool but may not grant: it has not heard a
    majority of its cluster (FENCED, gRPC UNAVAILABLE)."""


class NoOwner(Unavailable):
    """No reachable node owned the pool (NO_OWNER, gRPC UNAVAILABLE)."""


class NotOwner(QuotadError):
    """A call marked as forwarded reached a node that does not own the pool
    (NOT_OWNER, gRPC ABORTED): ask again who owns it."""


class DeadlineExceeded(QuotadError, TimeoutError):
    """The call's ``timeout`` ran out before quotad answered."""


class ClientClosed(QuotadError):
    """The client was closed."""


class NotGranted(QuotadError):
    """quotad predicts a wait longer than ``max_wait`` allows (with ``max_wait=0``:
    the cost does not fit now). ``retry_after`` (seconds) is when it should fit."""

    def __init__(self, pool: str, retry_after: float) -> None:
        super().__init__(
            f"quotad: not granted in pool {pool!r} within max wait (retry after {retry_after:.3f}s)", pool=pool
        )
        self.retry_after = retry_after


class NotSent(Exception):
    """Raise it inside ``with client.grant(...)`` when the provider call was never
    made: the grant is reported OUTCOME_NOT_SENT, which refunds the whole cost.
    The exception propagates like any other."""


class ConcurrencyLimitUnsupported(QuotadError, ValueError):
    """A LangChain rate limiter cannot release concurrency slots: the pool has a
    concurrency limit, use the token-aware integration instead."""


_REASON_TO_ERROR = {
    errors_pb2.INVALID_REQUEST: InvalidArgument,
    errors_pb2.REQUEST_ID_REUSED: RequestIdReused,
    errors_pb2.POOL_NOT_FOUND: PoolNotFound,
    errors_pb2.POOL_REMOVED: PoolRemoved,
    errors_pb2.GRANT_NOT_FOUND: GrantNotFound,
    errors_pb2.COST_TOO_LARGE: CostTooLarge,
    errors_pb2.QUOTA_EXHAUSTED: QuotaExhausted,
    errors_pb2.QUEUE_FULL: QueueFull,
    errors_pb2.REQUEST_TOO_LARGE: RequestTooLarge,
    errors_pb2.SHUTTING_DOWN: ShuttingDown,
    errors_pb2.FENCED: Fenced,
    errors_pb2.NO_OWNER: NoOwner,
    errors_pb2.NOT_OWNER: NotOwner,
}

# Answers without a reason (gRPC's own refusals before quotad sees the call), by code.
_CODE_TO_ERROR = {
    grpc.StatusCode.NOT_FOUND: PoolNotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RequestTooLarge,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def reason_of(err: grpc.RpcError) -> str:
    """The name of the ErrorReason quotad attached to err, or ""."""
    trailing: Any = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            st = status_pb2.Status.FromString(value)
        except Exception:  # a malformed detail is no reason
            return ""
        for detail in st.details:
            info = error_details_pb2.ErrorInfo()
            if isinstance(detail, any_pb2.Any) and detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                return info.reason if info.reason in errors_pb2.ErrorReason.keys() else ""
    return ""


def error_class(code: Optional[grpc.StatusCode], reason: str) -> type:
    """The exception class of an answer: by its reason, else by its code."""
    if reason:
        return _REASON_TO_ERROR.get(errors_pb2.ErrorReason.Value(reason), QuotadError)  # type: ignore[call-overload]
    return _CODE_TO_ERROR.get(code, QuotadError)  # type: ignore[arg-type]


def from_rpc_error(op: str, pool: str, err: grpc.RpcError) -> QuotadError:
    """Turns a gRPC error of op ("acquire", "report", ...) into a QuotadError."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    reason = reason_of(err)
    name = code.name if code is not None else "UNKNOWN"
    cls = error_class(code, reason)
    return cls(f"quotad: {op} {pool!r}: {name}: {details}", pool=pool, code=code, reason=reason)  # type: ignore[no-any-return]
