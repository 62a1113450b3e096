"""The synchronous client."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from typing import Any, Iterator, List, Mapping, Optional, Tuple

import grpc

from ._common import CHANNEL_OPTIONS, Addresses, _addresses  # noqa: F401 - their old home
from ._common import AcquireCall, ClientBase, GrantBase, Node, Tries, deadline_in, renew_interval
from ._errors import ClientClosed, QuotadError, Unavailable
from ._proto import quotad_pb2 as pb
from ._types import REPORT_TIMEOUT, Outcome, PidGuard, PoolInfo, prompt_message


class Grant(GrantBase):
    """A cost granted by quotad. Until it is reported, the client renews its lease
    in the background (at about a third of ``lease_ttl``), which holds its
    concurrency slot and its estimate. Report every grant exactly once: with
    ``report()``, or by leaving ``with client.grant(...)``."""

    _new_lock = staticmethod(threading.Lock)
    _client: "Client"
    _next_renew = 0.0

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
        provider_error: str = "",
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
        cache reads only where the pool says so (count_cache_reads).
        ``provider_error`` is the provider's error type or code on a failed call
        (e.g. "insufficient_quota"): a spent quota makes the pool fail fast."""
        with self._lock:
            self._client._renewer.remove(self)
            if self._nothing_to_send():
                return
            req = self._report_request(input_tokens, output_tokens, outcome, retry_after, headers,
                                       cache_creation_input_tokens, cache_read_input_tokens, provider_error)
            self._client._call("report", self.pool, "Report", req, deadline_in(timeout))
            self.reported = True

    def _finish(self, exc: Optional[BaseException]) -> None:
        if self.reported:
            return
        try:
            self.report(outcome=self._final_outcome(exc))
        except QuotadError:
            if exc is None:
                raise


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
            g._next_renew = time.monotonic() + renew_interval(g.lease_ttl)
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
            try:
                req = pb.RenewRequest(grant_id=g.id, pool=g.pool)
                g._renewed(self._client._call("renew", g.pool, "Renew", req, time.monotonic() + renew_interval(g.lease_ttl)))
            except QuotadError as e:
                if e.code == grpc.StatusCode.NOT_FOUND:  # the lease already ran out
                    self.remove(g)
                    continue
            except Exception:  # noqa: BLE001 - the next tick tries again
                pass
            with self._cond:
                if id(g) in self._open and not self._stopped:
                    heapq.heappush(
                        self._heap, (time.monotonic() + renew_interval(g.lease_ttl), next(self._seq), g)
                    )


class Client(ClientBase):
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

    def _init_connections(self) -> None:
        self._lock = threading.Lock()
        self._nodes: Optional[List[Node]] = None
        self._renewer = _Renewer(self)

    # -- connections -------------------------------------------------------

    def _get_nodes(self) -> List[Node]:
        with self._lock:
            if self._closed:
                raise ClientClosed("quotad: client closed")
            if self._nodes is not None and self._pid.changed():
                # Forked child: never touch the parent's channels (not even to close them).
                self._abandoned.append(self._nodes)
                self._nodes = None
            if self._nodes is None:
                self._pid = PidGuard()
                self._nodes = [Node(a, self._channel(a)) for a in self.addresses]
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
        tries = Tries(self, op, pool, self._get_nodes(), deadline)
        while True:
            timeout = tries.begin()
            if prepare is not None:
                prepare(request)
            try:
                return tries.succeeded(getattr(tries.node().stub, method)(request, timeout=timeout))
            except grpc.RpcError as e:
                tries.failed(e)
            pause = tries.next()
            if pause is not None:
                time.sleep(pause)

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
        a = AcquireCall(pool, requests, input_tokens, output_tokens, tenant if tenant is not None else self.tenant,
                        max_wait, timeout, request_id)
        try:
            resp = self._call("acquire", pool, "Acquire", a.request, a.deadline, a.prepare)
        except Unavailable:
            if not a.may_fail_open(self._local):
                raise
            return self._acquire_local(a)
        g = Grant(self, **a.granted(resp))
        self._renewer.add(g)
        return g

    def _acquire_local(self, a: AcquireCall) -> Grant:
        assert self._local is not None
        wait = self._local.reserve(a.pool, a.cost.requests, a.local_budget())
        if wait > 0:
            time.sleep(wait)
        return Grant(self, **a.local_grant())

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
        g = self.acquire(pool, requests=requests, input_tokens=input_tokens, output_tokens=output_tokens,
                         tenant=tenant, max_wait=max_wait, timeout=timeout)
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
        req = pb.CountTokensRequest(model=model, prompt=prompt_message(model, messages, text))
        return int(self._call("count_tokens", model, "CountTokens", req, deadline_in(timeout)).tokens)

    def get_pool(self, pool: str, *, timeout: Optional[float] = 10.0) -> PoolInfo:
        """The pool's limits, levels, concurrency limit, waiters and leases."""
        req = pb.GetPoolRequest(pool=pool)
        return PoolInfo.from_proto(self._call("get_pool", pool, "GetPool", req, deadline_in(timeout)))
