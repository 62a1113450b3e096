"""The exceptions of the quotad client."""

from __future__ import annotations

from typing import Optional

import grpc

__all__ = [
    "QuotadError",
    "PoolNotFound",
    "CostTooLarge",
    "QueueFull",
    "InvalidArgument",
    "Unavailable",
    "NotGranted",
    "DeadlineExceeded",
    "ClientClosed",
    "NotSent",
    "ConcurrencyLimitUnsupported",
]


class QuotadError(Exception):
    """Base class of every error raised by the quotad client.

    ``code`` is the gRPC status code quotad answered, when it answered one.
    """

    def __init__(self, message: str, *, pool: str = "", code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        self.pool = pool
        self.code = code


class PoolNotFound(QuotadError, LookupError):
    """The pool is not configured (gRPC NOT_FOUND)."""


class CostTooLarge(QuotadError, ValueError):
    """The cost exceeds what one of the pool's buckets can ever hold, so it can
    never be granted (gRPC FAILED_PRECONDITION)."""


class QueueFull(QuotadError):
    """The pool's wait queue is full, or its predicted wait exceeds the pool's
    max_queue_wait (gRPC RESOURCE_EXHAUSTED)."""


class InvalidArgument(QuotadError, ValueError):
    """The request is invalid: a negative cost, an empty pool name, absurd usage
    (gRPC INVALID_ARGUMENT, or refused by the client before sending)."""


class Unavailable(QuotadError, ConnectionError):
    """No quotad node could be reached within the client's unavailable timeout
    (and the client does not fail open)."""


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


_CODE_TO_ERROR = {
    grpc.StatusCode.NOT_FOUND: PoolNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: CostTooLarge,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(op: str, pool: str, err: grpc.RpcError) -> QuotadError:
    """Turns a gRPC error of op ("acquire", "report", ...) into a QuotadError."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    cls = _CODE_TO_ERROR.get(code, QuotadError)  # type: ignore[arg-type]
    name = code.name if code is not None else "UNKNOWN"
    return cls(f"quotad: {op} {pool!r}: {name}: {details}", pool=pool, code=code)
