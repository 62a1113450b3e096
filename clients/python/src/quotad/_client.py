"""The synchronous client."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from ._errors import ClientClosed, DeadlineExceeded, NotGranted, QuotadError, Unavailable, from_rpc_error
from ._proto import quotad_pb2 as pb
from ._proto import quotad_pb2_grpc as pb_grpc
from ._types import (
    DEFAULT_UNAVAILABLE_TIMEOUT,
    MAX_RETRY_BACKOFF,
    MIN_RENEW_INTERVAL,
    MIN_RETRY_BACKOFF,
    REPORT_TIMEOUT,
    Cost,
    LocalLimiter,
    Outcome,
    PidGuard,
    PoolInfo,
    acquire_request,
    check_acquire,
    duration,
    is_not_sent_error,
    new_request_id,
    prompt_message,
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
        from ._errors import InvalidArgument

        raise InvalidArgument("quotad: no address (or an empty one) given")
    return addrs


class _Node:
    __slots__ = ("addr", "channel", "stub")

    def __init__(self, addr: str, channel: Any) -> None:
        self.addr = addr
        self.channel = channel
        self.stub = pb_grpc.QuotaServiceStub(channel)


class Grant:
    """A cost granted by quotad. Until it is reported, the client renews its lease
    in the background (at about a third of ``lease_ttl``), which holds its
    concurrency slot and its estimate. Report every grant exactly once: with
    ``report()``, or by leaving ``with client.grant(...)``."""

    def __init__(
        self,
        client: "Client",
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
        self._lock = threading.Lock()
        self._usage = (0, 0)
        self._outcome: Optional[Outcome] = None
        self._next_renew = 0.0

    def set_usage(self, input_tokens: int = 0, output_tokens: int = 0) -> None:
        """Records the call's usage, reported when the ``with`` block ends."""
        self._usage = (int(input_tokens), int(output_tokens))

    def set_outcome(self, outcome: Outcome) -> None:
        """Records the outcome reported when the ``with`` block ends (by default
        SUCCESS, or FAILED when the block raises)."""
        self._outcome = outcome

    def report(
        self,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        retry_after: Optional[float] = None,
        headers: Optional[Mapping[str, str]] = None,
        cache_creation_input_tokens: int = 0,
        cache_read_input_tokens: int = 0,
        timeout: Optional[float] = REPORT_TIMEOUT,
    ) -> None:
        """Settles the grant with the call's actual usage and outcome, and stops
        the lease renewal. It retries on other nodes like acquire. Once a report
        has succeeded, later reports send nothing; a failed report may be retried
        (meanwhile the lease runs out and quotad keeps the estimate as charged).
        ``retry_after`` (seconds) and ``headers`` (the provider's response headers;
        only rate-limit headers are sent) go with OUTCOME_RATE_LIMITED.
        For Anthropic, ``input_tokens`` is its usage.input_tokens and the cache
        tokens go apart: quotad counts cache creations toward the input limit, and
        cache reads only where the pool says so (count_cache_reads)."""
        if input_tokens is None:
            input_tokens = self._usage[0]
        if output_tokens is None:
            output_tokens = self._usage[1]
        with self._lock:
            self._client._renewer.remove(self)
            if self.reported or self.local:
                self.reported = True
                return
            req = report_request(self.id, self.pool, input_tokens, output_tokens, outcome, retry_after, headers,
                                 cache_creation_input_tokens, cache_read_input_tokens)
            deadline = None if timeout is None else time.monotonic() + timeout
            self._client._call("report", self.pool, "Report", req, deadline)
            self.reported = True

    def _finish(self, exc: Optional[BaseException]) -> None:
        if self.reported:
            return
        if exc is None:
            outcome = self._outcome or Outcome.SUCCESS
        elif is_not_sent_error(exc):
            outcome = Outcome.NOT_SENT
        else:
            outcome = self._outcome if self._outcome not in (None, Outcome.SUCCESS) else Outcome.FAILED
        try:
            self.report(outcome=outcome)
        except QuotadError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"Grant(id={self.id!r}, pool={self.pool!r}, cost={self.cost}, waited={self.waited:.3f}, local={self.local})"


class _Renewer:
    """One daemon thread per client renews the leases of its open grants."""

    def __init__(self, client: "Client") -> None:
        self._client = client
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int, Grant]] = []
        self._open: "set[int]" = set()
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._pid = PidGuard()
        self._stopped = False

    def add(self, g: Grant) -> None:
        if g.lease_ttl <= 0 or g.local:
            return
        with self._cond:
            if self._stopped:
                return
            if self._pid.changed():  # a forked child: the parent's thread is not here
                self._heap, self._open, self._thread, self._pid = [], set(), None, PidGuard()
            g._next_renew = time.monotonic() + max(g.lease_ttl / 3, MIN_RENEW_INTERVAL)
            self._open.add(id(g))
            heapq.heappush(self._heap, (g._next_renew, next(self._seq), g))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="quotad-renew", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, g: Grant) -> None:
        with self._cond:
            self._open.discard(id(g))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._open.clear()
            self._cond.notify()
        t = self._thread
        if t is not None and t is not threading.current_thread() and not self._pid.changed():
            t.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    while self._heap and id(self._heap[0][2]) not in self._open:
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
                if self._stopped:
                    return
                _, _, g = heapq.heappop(self._heap)
            ttl = g.lease_ttl
            try:
                interval = max(ttl / 3, MIN_RENEW_INTERVAL)
                resp = self._client._call(
                    "renew", g.pool, "Renew", pb.RenewRequest(grant_id=g.id, pool=g.pool), time.monotonic() + interval
                )
                if resp.HasField("lease_ttl") and seconds(resp.lease_ttl) > 0:
                    g.lease_ttl = seconds(resp.lease_ttl)
            except QuotadError as e:
                if e.code == grpc.StatusCode.NOT_FOUND:  # the lease already ran out
                    self.remove(g)
                    continue
            except Exception:  # noqa: BLE001 - the next tick tries again
                pass
            with self._cond:
                if id(g) in self._open and not self._stopped:
                    heapq.heappush(
                        self._heap, (time.monotonic() + max(g.lease_ttl / 3, MIN_RENEW_INTERVAL), next(self._seq), g)
                    )


class Client:
    """A connection to a quotad cluster, for threads. Safe for concurrent use.

    ``addresses`` are "host:port" (or any gRPC target), tried in order; a call
    that finds a node UNAVAILABLE moves on to the next with the same request id,
    so quotad charges it once. When no node has answered for
    ``unavailable_timeout`` seconds, calls fail with :class:`Unavailable` (fail
    closed), or, with ``fail_open_rate`` (requests per second, this process's
    share of the provider limit) and ``fail_open_burst``, acquire falls back to a
    local limiter: never silently unlimited.

    Fork safety: gRPC channels must not cross ``fork()``. The client opens its
    channels lazily and remembers the process that opened them; in a forked child
    (gunicorn or Celery prefork workers) the first call opens new channels and a
    new renewal thread, leaving the parent's alone. Grants acquired before the
    fork belong to the parent. Best practice is still to create the client after
    the fork (gunicorn's ``post_fork``, Celery's ``worker_process_init``), or
    before the fork without using it.
    """

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
        from ._errors import InvalidArgument

        self.addresses = _addresses(addresses)
        if not unavailable_timeout > 0:
            raise InvalidArgument(f"quotad: unavailable_timeout {unavailable_timeout} must be positive")
        self.unavailable_timeout = unavailable_timeout
        self.tenant = tenant
        self._local = LocalLimiter(fail_open_rate, fail_open_burst) if fail_open_rate is not None else None
        self._credentials = credentials
        self._options = CHANNEL_OPTIONS + list(channel_options)
        self._lock = threading.Lock()
        self._nodes: Optional[List[_Node]] = None
        self._pid = PidGuard()
        self._abandoned: List[Any] = []  # a parent's channels, kept alive but unused in a child
        self._cur = 0
        self._down = False
        self._closed = False
        self._renewer = _Renewer(self)

    # -- connections -------------------------------------------------------

    def _get_nodes(self) -> List[_Node]:
        with self._lock:
            if self._closed:
                raise ClientClosed("quotad: client closed")
            if self._nodes is not None and self._pid.changed():
                # Forked child: never touch the parent's channels (not even to close them).
                self._abandoned.append(self._nodes)
                self._nodes = None
            if self._nodes is None:
                self._pid = PidGuard()
                self._nodes = [_Node(a, self._channel(a)) for a in self.addresses]
            return self._nodes

    def _channel(self, addr: str) -> Any:
        if self._credentials is not None:
            return grpc.secure_channel(addr, self._credentials, options=self._options)
        return grpc.insecure_channel(addr, options=self._options)

    def close(self) -> None:
        """Stops the lease renewals and closes the connections. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            nodes, self._nodes = self._nodes, None
        self._renewer.stop()
        if nodes and not self._pid.changed():
            for n in nodes:
                n.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, op: str, pool: str, method: str, request: Any, deadline: Optional[float], prepare: Any = None) -> Any:
        nodes = self._get_nodes()
        n = len(nodes)
        i = self._cur % n
        give_up = time.monotonic() + self.unavailable_timeout
        pause = MIN_RETRY_BACKOFF
        last: Optional[grpc.RpcError] = None
        attempt = 0
        while True:
            attempt += 1
            if self._closed:
                raise ClientClosed(f"quotad: {op} {pool!r}: client closed", pool=pool)
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise self._deadline_error(op, pool, last)
            if prepare is not None:
                prepare(request)
            try:
                resp = getattr(nodes[i].stub, method)(request, timeout=timeout)
                self._down = False
                return resp
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None and time.monotonic() >= deadline - 0.001:
                    raise self._deadline_error(op, pool, last) from e
                if code != grpc.StatusCode.UNAVAILABLE:
                    self._down = False
                    raise from_rpc_error(op, pool, e) from None
                last = e
            i = (i + 1) % n
            self._cur = i
            if attempt % n:
                continue
            now = time.monotonic()
            if self._down or now >= give_up:
                self._down = True
                raise Unavailable(
                    f"quotad: {op} {pool!r}: no node reachable (last: {nodes[(i - 1) % n].addr}: "
                    f"{last.details() if last is not None else ''})",
                    pool=pool,
                    code=grpc.StatusCode.UNAVAILABLE,
                )
            sleep = min(pause, give_up - now)
            if deadline is not None:
                sleep = min(sleep, max(0.0, deadline - now))
            time.sleep(max(0.0, sleep))
            pause = min(2 * pause, MAX_RETRY_BACKOFF)

    @staticmethod
    def _deadline_error(op: str, pool: str, last: Optional[grpc.RpcError]) -> QuotadError:
        if last is not None:
            return Unavailable(f"quotad: {op} {pool!r}: timed out while no node was reachable", pool=pool,
                               code=grpc.StatusCode.UNAVAILABLE)
        return DeadlineExceeded(f"quotad: {op} {pool!r}: timeout", pool=pool, code=grpc.StatusCode.DEADLINE_EXCEEDED)

    # -- API -----------------------------------------------------------------

    def acquire(
        self,
        pool: str,
        *,
        requests: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        tenant: Optional[str] = None,
        max_wait: Optional[float] = None,
        timeout: Optional[float] = None,
        request_id: Optional[str] = None,
    ) -> Grant:
        """Blocks until quotad grants the cost in ``pool`` and returns the grant,
        whose lease the client renews until it is reported.

        ``max_wait`` (seconds, across retries): when quotad predicts a longer wait
        it raises :class:`NotGranted` at once; 0 only tries. ``timeout`` bounds the
        whole call (:class:`DeadlineExceeded`). Without either it waits as long as
        needed. Raises PoolNotFound, CostTooLarge, QueueFull, InvalidArgument,
        Unavailable (unless failing open) or ClientClosed."""
        check_acquire(pool, requests, input_tokens, output_tokens, max_wait)
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        cost = Cost(requests, input_tokens, output_tokens)
        rid = request_id or new_request_id()
        req = acquire_request(pool, tenant if tenant is not None else self.tenant, cost, rid)

        def prepare(r: Any) -> None:
            if max_wait is not None:  # the wait budget is for the whole acquire, retries included
                r.max_wait.CopyFrom(duration(max(0.0, max_wait - (time.monotonic() - start))))

        try:
            resp = self._call("acquire", pool, "Acquire", req, deadline, prepare)
        except Unavailable:
            if self._local is None or (deadline is not None and time.monotonic() >= deadline):
                raise
            return self._acquire_local(pool, cost, rid, start, max_wait, deadline)
        if not resp.granted:
            raise NotGranted(pool, seconds(resp.retry_after))
        g = Grant(
            self,
            id=resp.grant_id,
            pool=pool,
            cost=Cost(resp.cost.requests, resp.cost.input_tokens, resp.cost.output_tokens),
            waited=seconds(resp.waited),
            lease_ttl=seconds(resp.lease_ttl),
            sequence=resp.sequence,
            shadow=resp.shadow,
            shadow_wait=seconds(resp.shadow_wait),
        )
        self._renewer.add(g)
        return g

    def _acquire_local(
        self, pool: str, cost: Cost, rid: str, start: float, max_wait: Optional[float], deadline: Optional[float]
    ) -> Grant:
        assert self._local is not None
        budget = None if max_wait is None else max_wait - (time.monotonic() - start)
        if deadline is not None:
            left = deadline - time.monotonic()
            budget = left if budget is None else min(budget, left)
        wait = self._local.reserve(pool, cost.requests, budget)
        if wait > 0:
            time.sleep(wait)
        return Grant(
            self,
            id="local-" + rid,
            pool=pool,
            cost=Cost(max(cost.requests, 1), cost.input_tokens, cost.output_tokens),
            waited=time.monotonic() - start,
            lease_ttl=0.0,
            local=True,
        )

    @contextlib.contextmanager
    def grant(
        self,
        pool: str,
        *,
        requests: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        tenant: Optional[str] = None,
        max_wait: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> Iterator[Grant]:
        """``with client.grant(pool, input_tokens=..., output_tokens=...) as g:``
        acquires, renews the lease while the body runs, and reports when it ends:
        SUCCESS with the usage given to ``g.set_usage()``, FAILED when the body
        raises, NOT_SENT when it raises :class:`NotSent` or a connection error
        from before anything was sent. A ``g.report()`` in the body wins."""
        g = self.acquire(
            pool,
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tenant=tenant,
            max_wait=max_wait,
            timeout=timeout,
        )
        try:
            yield g
        except BaseException as e:
            g._finish(e)
            raise
        g._finish(None)

    def count_tokens(self, model: str, *, messages: Any = None, text: Optional[str] = None,
                     timeout: Optional[float] = 10.0) -> int:
        """quotad's count of the input tokens of chat ``messages`` (dicts with role
        and content) or of a ``text``, for ``model`` (the CountTokens RPC)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        req = pb.CountTokensRequest(model=model, prompt=prompt_message(model, messages, text))
        return int(self._call("count_tokens", model, "CountTokens", req, deadline).tokens)

    def get_pool(self, pool: str, *, timeout: Optional[float] = 10.0) -> PoolInfo:
        """The pool's limits, levels, concurrency limit, waiters and leases."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return PoolInfo.from_proto(self._call("get_pool", pool, "GetPool", pb.GetPoolRequest(pool=pool), deadline))
