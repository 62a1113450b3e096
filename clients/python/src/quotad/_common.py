"""The logic shared by the sync and asyncio clients: configuration, the retry
bookkeeping of a call, the acquire request and its answer, and the grant's state.
Only the I/O (blocking or awaited) stays in ``_client.py`` and ``_aio.py``."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from ._errors import (
    ClientClosed,
    DeadlineExceeded,
    InvalidArgument,
    NotGranted,
    QuotadError,
    Unavailable,
    error_class,
    from_rpc_error,
    reason_of,
)
from ._proto import quotad_pb2_grpc as pb_grpc
from ._types import (
    DEFAULT_UNAVAILABLE_TIMEOUT,
    MAX_RETRY_BACKOFF,
    MIN_RENEW_INTERVAL,
    MIN_RETRY_BACKOFF,
    Cost,
    LocalLimiter,
    Outcome,
    PidGuard,
    acquire_request,
    check_acquire,
    duration,
    is_not_sent_error,
    new_request_id,
    report_request,
    seconds,
)

Addresses = Union[str, Sequence[str]]

#: Channel options: reconnect to a node that comes back within a fraction of a
#: second, not after gRPC's default backoff of a second and more.
CHANNEL_OPTIONS: List[Tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.enable_retries", 0),
]


def _addresses(addresses: Addresses) -> List[str]:
    addrs = [addresses] if isinstance(addresses, str) else list(addresses)
    if not addrs or any(not a for a in addrs):
        raise InvalidArgument("quotad: no address (or an empty one) given")
    return addrs


def deadline_in(timeout: Optional[float]) -> Optional[float]:
    """The monotonic deadline ``timeout`` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


def renew_interval(lease_ttl: float) -> float:
    """How long after a (re)new(al) a lease is renewed again."""
    return max(lease_ttl / 3, MIN_RENEW_INTERVAL)


class Node:
    """One quotad address, its channel and its stub."""

    __slots__ = ("addr", "channel", "stub")

    def __init__(self, addr: str, channel: Any) -> None:
        self.addr = addr
        self.channel = channel
        self.stub = pb_grpc.QuotaServiceStub(channel)


class ClientBase:
    """The configuration and the retry state of a client; the subclasses add the
    connections (``_init_connections``) and the I/O."""

    def __init__(
        self,
        addresses: Addresses,
        *,
        unavailable_timeout: float = DEFAULT_UNAVAILABLE_TIMEOUT,
        fail_open_rate: Optional[float] = None,
        fail_open_burst: int = 1,
        tenant: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        channel_options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        self.addresses = _addresses(addresses)
        if not unavailable_timeout > 0:
            raise InvalidArgument(f"quotad: unavailable_timeout {unavailable_timeout} must be positive")
        self.unavailable_timeout = unavailable_timeout
        self.tenant = tenant
        self._local = LocalLimiter(fail_open_rate, fail_open_burst) if fail_open_rate is not None else None
        self._credentials = credentials
        self._options = CHANNEL_OPTIONS + list(channel_options)
        self._pid = PidGuard()
        self._abandoned: List[Any] = []  # a parent's channels, kept alive but unused in a child
        self._cur = 0
        self._down = False
        self._closed = False
        self._init_connections()

    def _init_connections(self) -> None:
        raise NotImplementedError


def deadline_error(op: str, pool: str, last: Optional[grpc.RpcError]) -> QuotadError:
    if last is not None:
        return Unavailable(f"quotad: {op} {pool!r}: timed out while no node was reachable", pool=pool,
                           code=grpc.StatusCode.UNAVAILABLE)
    return DeadlineExceeded(f"quotad: {op} {pool!r}: timeout", pool=pool, code=grpc.StatusCode.DEADLINE_EXCEEDED)


class Tries:
    """The bookkeeping of one call's tries across the nodes: which node is next,
    the per-try timeout, the pause after a round of UNAVAILABLE nodes, and when to
    give up. The caller does the RPC and the sleep::

        tries = Tries(client, op, pool, nodes, deadline)
        while True:
            timeout = tries.begin()
            try:
                return tries.succeeded(stub_of(tries.node())(request, timeout=timeout))
            except grpc.RpcError as e:
                tries.failed(e)
            pause = tries.next()
            if pause is not None:
                sleep(pause)
    """

    def __init__(self, client: ClientBase, op: str, pool: str, nodes: List[Node], deadline: Optional[float]) -> None:
        self.client, self.op, self.pool, self.nodes, self.deadline = client, op, pool, nodes, deadline
        self.i = client._cur % len(nodes)
        self.give_up = time.monotonic() + client.unavailable_timeout
        self.pause = MIN_RETRY_BACKOFF
        self.last: Optional[grpc.RpcError] = None
        self.attempt = 0

    def begin(self) -> Optional[float]:
        """Starts a try: its timeout, or raises when the client is closed or the deadline passed."""
        self.attempt += 1
        if self.client._closed:
            raise ClientClosed(f"quotad: {self.op} {self.pool!r}: client closed", pool=self.pool)
        if self.deadline is None:
            return None
        timeout = self.deadline - time.monotonic()
        if timeout <= 0:
            raise deadline_error(self.op, self.pool, self.last)
        return timeout

    def node(self) -> Node:
        return self.nodes[self.i]

    def succeeded(self, resp: Any) -> Any:
        self.client._down = False
        return resp

    def failed(self, e: grpc.RpcError) -> None:
        """Raises the error of a failed try, unless it may go on to another node."""
        code = e.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and self.deadline is not None and time.monotonic() >= self.deadline - 0.001:
            raise deadline_error(self.op, self.pool, self.last) from e
        if code != grpc.StatusCode.UNAVAILABLE:
            self.client._down = False
            raise from_rpc_error(self.op, self.pool, e) from None
        self.last = e

    def next(self) -> Optional[float]:
        """Moves on to the next node after an UNAVAILABLE one: None to try it at
        once, else the seconds to pause first (after a whole round); raises
        Unavailable when no node has answered for unavailable_timeout."""
        n = len(self.nodes)
        self.i = (self.i + 1) % n
        self.client._cur = self.i
        if self.attempt % n:
            return None
        now = time.monotonic()
        if self.client._down or now >= self.give_up:
            self.client._down = True
            reason = reason_of(self.last) if self.last is not None else ""
            cls = error_class(grpc.StatusCode.UNAVAILABLE, reason)
            if not issubclass(cls, Unavailable):
                cls = Unavailable
            raise cls(
                f"quotad: {self.op} {self.pool!r}: no node reachable (last: {self.nodes[(self.i - 1) % n].addr}: "
                f"{self.last.details() if self.last is not None else ''})",
                pool=self.pool,
                code=grpc.StatusCode.UNAVAILABLE,
                reason=reason,
            )
        sleep = min(self.pause, self.give_up - now)
        if self.deadline is not None:
            sleep = min(sleep, max(0.0, self.deadline - now))
        self.pause = min(2 * self.pause, MAX_RETRY_BACKOFF)
        return max(0.0, sleep)


class AcquireCall:
    """One acquire, for either client: the checked arguments, the request, and
    the grant (as the keyword arguments of Grant or AsyncGrant) from the answer
    or from the fail-open limiter."""

    def __init__(
        self,
        pool: str,
        requests: int,
        input_tokens: int,
        output_tokens: int,
        tenant: Optional[str],
        max_wait: Optional[float],
        timeout: Optional[float],
        request_id: Optional[str],
    ) -> None:
        check_acquire(pool, requests, input_tokens, output_tokens, max_wait)
        self.pool = pool
        self.max_wait = max_wait
        self.start = time.monotonic()
        self.deadline = None if timeout is None else self.start + timeout
        self.cost = Cost(requests, input_tokens, output_tokens)
        self.rid = request_id or new_request_id()
        self.request = acquire_request(pool, tenant, self.cost, self.rid)

    def prepare(self, r: Any) -> None:
        """Before each try: the wait budget is for the whole acquire, retries included."""
        if self.max_wait is not None:
            r.max_wait.CopyFrom(duration(max(0.0, self.max_wait - (time.monotonic() - self.start))))

    def may_fail_open(self, local: Optional[LocalLimiter]) -> bool:
        """After Unavailable: whether the fail-open limiter takes over."""
        return local is not None and not (self.deadline is not None and time.monotonic() >= self.deadline)

    def granted(self, resp: Any) -> Dict[str, Any]:
        """The grant of quotad's answer; raises NotGranted when it refused."""
        if not resp.granted:
            raise NotGranted(self.pool, seconds(resp.retry_after))
        return dict(
            id=resp.grant_id,
            pool=self.pool,
            cost=Cost(resp.cost.requests, resp.cost.input_tokens, resp.cost.output_tokens),
            waited=seconds(resp.waited),
            lease_ttl=seconds(resp.lease_ttl),
            sequence=resp.sequence,
            shadow=resp.shadow,
            shadow_wait=seconds(resp.shadow_wait),
        )

    def local_budget(self) -> Optional[float]:
        """How long the fail-open limiter may make this acquire wait (None: any)."""
        budget = None if self.max_wait is None else self.max_wait - (time.monotonic() - self.start)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            budget = left if budget is None else min(budget, left)
        return budget

    def local_grant(self) -> Dict[str, Any]:
        """The fail-open limiter's grant, once its wait is over."""
        return dict(
            id="local-" + self.rid,
            pool=self.pool,
            cost=Cost(max(self.cost.requests, 1), self.cost.input_tokens, self.cost.output_tokens),
            waited=time.monotonic() - self.start,
            lease_ttl=0.0,
            local=True,
        )


class GrantBase:
    """The state of a grant, shared by Grant and AsyncGrant."""

    #: The lock that serialises reports: threading.Lock or asyncio.Lock.
    _new_lock: Any

    def __init__(
        self,
        client: Any,
        *,
        id: str,
        pool: str,
        cost: Cost,
        waited: float,
        lease_ttl: float,
        sequence: int = 0,
        shadow: bool = False,
        shadow_wait: float = 0.0,
        local: bool = False,
    ) -> None:
        #: The grant id ("local-..." for a fail-open grant).
        self.id = id
        self.pool = pool
        #: What was charged (requests at least 1).
        self.cost = cost
        #: Seconds spent waiting in quotad's queue (or the local limiter).
        self.waited = waited
        self.lease_ttl = lease_ttl
        self.sequence = sequence
        self.shadow = shadow
        self.shadow_wait = shadow_wait
        #: True for a grant of the fail-open limiter (quotad was unreachable);
        #: reporting it does nothing.
        self.local = local
        self.reported = False
        self._client = client
        self._lock = self._new_lock()
        self._usage = (0, 0)
        self._outcome: Optional[Outcome] = None

    def set_usage(self, input_tokens: int = 0, output_tokens: int = 0) -> None:
        """Records the call's usage, reported when the ``with`` (or ``async with``) block ends."""
        self._usage = (int(input_tokens), int(output_tokens))

    def set_outcome(self, outcome: Outcome) -> None:
        """Records the outcome reported when the ``with`` (or ``async with``) block
        ends (by default SUCCESS, or FAILED when the block raises)."""
        self._outcome = outcome

    def _nothing_to_send(self) -> bool:
        """True (and the grant counts as reported) when a report sends nothing:
        it was reported already, or it is a fail-open grant."""
        if self.reported or self.local:
            self.reported = True
            return True
        return False

    def _report_request(
        self,
        input_tokens: Optional[int],
        output_tokens: Optional[int],
        outcome: Outcome,
        retry_after: Optional[float],
        headers: Optional[Mapping[str, str]],
        cache_creation_input_tokens: int,
        cache_read_input_tokens: int,
        provider_error: str = "",
    ) -> Any:
        """The Report request; missing token counts are those of set_usage."""
        if input_tokens is None:
            input_tokens = self._usage[0]
        if output_tokens is None:
            output_tokens = self._usage[1]
        return report_request(self.id, self.pool, input_tokens, output_tokens, outcome, retry_after, headers,
                              cache_creation_input_tokens, cache_read_input_tokens, provider_error)

    def _final_outcome(self, exc: Optional[BaseException]) -> Outcome:
        """The outcome reported when the ``with`` block ends, raising ``exc`` or not."""
        if exc is None:
            return self._outcome or Outcome.SUCCESS
        if is_not_sent_error(exc):
            return Outcome.NOT_SENT
        return self._outcome if self._outcome not in (None, Outcome.SUCCESS) else Outcome.FAILED  # type: ignore[return-value]

    def _renewed(self, resp: Any) -> None:
        """Takes the lease ttl of a Renew answer, when it gives one."""
        if resp.HasField("lease_ttl") and seconds(resp.lease_ttl) > 0:
            self.lease_ttl = seconds(resp.lease_ttl)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(id={self.id!r}, pool={self.pool!r}, cost={self.cost}, "
                f"waited={self.waited:.3f}, local={self.local})")
