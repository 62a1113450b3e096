"""Values shared by the sync and asyncio clients."""

from __future__ import annotations

import enum
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from google.protobuf import duration_pb2

from ._errors import CostTooLarge, InvalidArgument, NotGranted
from ._proto import quotad_pb2 as pb

#: How long a call keeps retrying while no quotad node answers before quotad counts
#: as unreachable (then: Unavailable, or the fail-open limiter).
DEFAULT_UNAVAILABLE_TIMEOUT = 10.0
#: How long the Report sent by a context manager or a transport may take.
REPORT_TIMEOUT = 10.0
MIN_RENEW_INTERVAL = 0.01
MIN_RETRY_BACKOFF = 0.05
MAX_RETRY_BACKOFF = 1.0


class Outcome(enum.IntEnum):
    """What happened to the provider call."""

    #: The call reached the provider and succeeded.
    SUCCESS = pb.OUTCOME_SUCCESS
    #: The call never reached the provider: quotad refunds the whole cost.
    NOT_SENT = pb.OUTCOME_NOT_SENT
    #: The call reached the provider and failed: it still counts.
    FAILED = pb.OUTCOME_FAILED
    #: The provider answered 429: quotad pauses the pool for ``retry_after``.
    RATE_LIMITED = pb.OUTCOME_RATE_LIMITED


@dataclass(frozen=True)
class Cost:
    """What one call takes; ``requests`` below 1 count as 1."""

    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class LimitInfo:
    resource: str
    period: float
    amount: int
    capacity: int
    level: int
    debt: int


@dataclass(frozen=True)
class PoolInfo:
    """A pool's status, as GetPool answers it (``raw`` is the PoolStatus message)."""

    pool: str
    limits: Tuple[LimitInfo, ...]
    concurrent_limit: int
    in_flight: int
    waiters: int
    lease_ttl: float
    paused_for: float
    shadow: bool
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, p: Any) -> "PoolInfo":
        return cls(
            pool=p.pool,
            limits=tuple(
                LimitInfo(l.resource, seconds(l.period), l.amount, l.capacity, l.level, l.debt) for l in p.limits
            ),
            concurrent_limit=p.concurrent_limit,
            in_flight=p.in_flight,
            waiters=p.waiters,
            lease_ttl=seconds(p.lease_ttl),
            paused_for=seconds(p.paused_for),
            shadow=p.shadow,
            raw=p,
        )


def seconds(d: Any) -> float:
    return d.seconds + d.nanos / 1e9


def duration(s: float) -> Any:
    d = duration_pb2.Duration()
    s = max(0.0, s)
    d.seconds = int(s)
    d.nanos = int(round((s - int(s)) * 1e9))
    if d.nanos >= 1_000_000_000:
        d.seconds += 1
        d.nanos -= 1_000_000_000
    return d


def prompt_message(model: str, messages: Any = None, text: Optional[str] = None) -> Any:
    """A Prompt: chat messages (dicts with role, content, name; content a string or
    a list of text parts) or a text."""
    p = pb.Prompt(text=text or "")
    for m in messages or ():
        get = m.get if isinstance(m, Mapping) else (lambda k, d=None, _m=m: getattr(_m, k, d))
        content = get("content", "")
        if not isinstance(content, str):
            content = "".join(
                part if isinstance(part, str) else str(part.get("text", "")) if isinstance(part, Mapping) else ""
                for part in (content or [])
            )
        p.messages.add(role=str(get("role", "") or get("type", "") or ""), content=content, name=str(get("name", "") or ""))
    return p


def new_request_id() -> str:
    return secrets.token_hex(16)


def check_acquire(pool: str, requests: int, input_tokens: int, output_tokens: int, max_wait: Optional[float]) -> None:
    if not pool:
        raise InvalidArgument("quotad: acquire: empty pool name")
    if requests < 0 or input_tokens < 0 or output_tokens < 0:
        raise InvalidArgument(
            f"quotad: acquire {pool!r}: negative cost (requests={requests}, input_tokens={input_tokens}, "
            f"output_tokens={output_tokens})",
            pool=pool,
        )
    if max_wait is not None and max_wait < 0:
        raise InvalidArgument(f"quotad: acquire {pool!r}: negative max_wait {max_wait}", pool=pool)


def acquire_request(pool: str, tenant: Optional[str], cost: Cost, request_id: str) -> Any:
    return pb.AcquireRequest(
        pool=pool,
        tenant=tenant or "",
        cost=pb.Cost(requests=cost.requests, input_tokens=cost.input_tokens, output_tokens=cost.output_tokens),
        request_id=request_id,
    )


def report_request(
    grant_id: str,
    pool: str,
    input_tokens: int,
    output_tokens: int,
    outcome: Outcome,
    retry_after: Optional[float],
    headers: Optional[Mapping[str, str]],
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    provider_error: str = "",
) -> Any:
    if min(input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens) < 0:
        raise InvalidArgument(
            f"quotad: report {pool!r}: negative usage ({input_tokens}, {output_tokens}, "
            f"{cache_creation_input_tokens}, {cache_read_input_tokens})",
            pool=pool,
        )
    req = pb.ReportRequest(
        grant_id=grant_id,
        pool=pool,
        provider_error=provider_error,
        usage=pb.Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
        ),
        outcome=int(outcome),  # type: ignore[arg-type]
        headers=rate_limit_headers(headers),
    )
    if retry_after is not None and retry_after > 0:
        req.retry_after.CopyFrom(duration(retry_after))
    return req


def rate_limit_headers(headers: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """Keeps the provider's rate-limit headers only (x-ratelimit-*,
    anthropic-ratelimit-*, retry-after, retry-after-ms), names lowercased."""
    out: Dict[str, str] = {}
    if not headers:
        return out
    items = headers.multi_items() if hasattr(headers, "multi_items") else headers.items()  # type: ignore[union-attr]
    for k, v in items:
        k = str(k).lower()
        if k in out:
            continue
        if k.startswith("x-ratelimit-") or k.startswith("anthropic-ratelimit-") or k in ("retry-after", "retry-after-ms"):
            out[k] = str(v)
    return out


def is_not_sent_error(exc: Optional[BaseException]) -> bool:
    """True when exc says the call never reached the provider: NotSent, or a
    connection error raised before anything was sent (refused connection, DNS
    failure, connect timeout, from httpx/httpx2/httpcore or the socket layer)."""
    from ._errors import NotSent

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (NotSent, ConnectionRefusedError)):
            return True
        for klass in type(exc).__mro__:
            if klass.__name__ in ("ConnectError", "ConnectTimeout", "APIConnectionError") and klass.__module__.split(".")[
                0
            ] in ("httpx", "httpx2", "httpcore", "httpcore2"):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


class LocalLimiter:
    """The fail-open limiter: a token bucket of requests refilling at ``rate`` per
    second up to ``burst``, starting full. Callers that must wait reserve first
    (the level goes negative), so they are served in order. Thread-safe."""

    def __init__(self, rate: float, burst: int) -> None:
        if not (rate > 0) or math.isinf(rate):
            raise InvalidArgument(f"quotad: fail-open rate {rate} must be positive and finite: never unlimited")
        if burst < 1:
            raise InvalidArgument(f"quotad: fail-open burst {burst} must be at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self, pool: str, n: int, max_wait: Optional[float]) -> float:
        """Takes n requests and returns how long to wait before using them; raises
        NotGranted (taking nothing) when that is longer than max_wait."""
        n = max(n, 1)
        if n > self.burst:
            raise CostTooLarge(f"quotad: acquire {pool!r} (fail-open): {n} requests exceed the local burst", pool=pool)
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            wait = (n - self._tokens) / self.rate
            if max_wait is not None and wait > max_wait:
                raise NotGranted(pool, wait)
            self._tokens -= n
            return wait

    def give_back(self, n: int) -> None:
        with self._lock:
            self._tokens = min(self.burst, self._tokens + max(n, 1))


class PidGuard:
    """Remembers the process that made something; ``changed()`` is true in a
    forked child."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def changed(self) -> bool:
        return os.getpid() != self.pid
