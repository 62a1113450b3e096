"""The asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import grpc.aio

from ._client import CHANNEL_OPTIONS, Addresses, Client, _addresses
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


# The process in which grpc.aio was first used by a client. gRPC's asyncio stack
# does not survive fork(): in a child of that process (a module global is inherited
# by fork) a grpc.aio channel crashes or hangs, while the synchronous stack works.
_AIO_USED_PID: Optional[int] = None


def _aio_unusable() -> bool:
    return _AIO_USED_PID is not None and _AIO_USED_PID != os.getpid()


class _AioNode:
    __slots__ = ("addr", "channel", "stub")

    def __init__(self, addr: str, channel: Any) -> None:
        self.addr = addr
        self.channel = channel
        self.stub = pb_grpc.QuotaServiceStub(channel)


class AsyncGrant:
    """A cost granted by quotad, for asyncio. Its lease is renewed by a task on the
    event loop until it is reported (``await g.report(...)``, or by leaving
    ``async with client.grant(...)``)."""

    def __init__(
        self,
        client: "AsyncClient",
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
        self.id = id
        self.pool = pool
        self.cost = cost
        self.waited = waited
        self.lease_ttl = lease_ttl
        self.sequence = sequence
        self.shadow = shadow
        self.shadow_wait = shadow_wait
        self.local = local
        self.reported = False
        self._client = client
        self._lock = asyncio.Lock()
        self._usage = (0, 0)
        self._outcome: Optional[Outcome] = None
        self._renewal: Optional[asyncio.Task[None]] = None

    def set_usage(self, input_tokens: int = 0, output_tokens: int = 0) -> None:
        """Records the call's usage, reported when the ``async with`` block ends."""
        self._usage = (int(input_tokens), int(output_tokens))

    def set_outcome(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def _start_renewal(self) -> None:
        if self.lease_ttl > 0 and not self.local:
            self._renewal = asyncio.get_running_loop().create_task(self._renew())
            self._client._renewals.add(self._renewal)
            self._renewal.add_done_callback(self._client._renewals.discard)

    async def _renew(self) -> None:
        req = pb.RenewRequest(grant_id=self.id, pool=self.pool)
        while True:
            interval = max(self.lease_ttl / 3, MIN_RENEW_INTERVAL)
            await asyncio.sleep(interval)
            try:
                resp = await self._client._call("renew", self.pool, "Renew", req, time.monotonic() + interval)
                if resp.HasField("lease_ttl") and seconds(resp.lease_ttl) > 0:
                    self.lease_ttl = seconds(resp.lease_ttl)
            except QuotadError as e:
                if e.code == grpc.StatusCode.NOT_FOUND or isinstance(e, ClientClosed):
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next tick tries again
                pass

    def _stop_renewal(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None

    async def report(
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
        """Settles the grant; see :meth:`quotad.Grant.report`."""
        if input_tokens is None:
            input_tokens = self._usage[0]
        if output_tokens is None:
            output_tokens = self._usage[1]
        async with self._lock:
            self._stop_renewal()
            if self.reported or self.local:
                self.reported = True
                return
            req = report_request(self.id, self.pool, input_tokens, output_tokens, outcome, retry_after, headers,
                                 cache_creation_input_tokens, cache_read_input_tokens)
            deadline = None if timeout is None else time.monotonic() + timeout
            await self._client._call("report", self.pool, "Report", req, deadline)
            self.reported = True

    async def _finish(self, exc: Optional[BaseException]) -> None:
        if self.reported:
            return
        if exc is None:
            outcome = self._outcome or Outcome.SUCCESS
        elif is_not_sent_error(exc):
            outcome = Outcome.NOT_SENT
        else:
            outcome = self._outcome if self._outcome not in (None, Outcome.SUCCESS) else Outcome.FAILED
        try:
            # Shielded: a cancelled body still settles its grant.
            await asyncio.shield(self.report(outcome=outcome))
        except QuotadError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"AsyncGrant(id={self.id!r}, pool={self.pool!r}, cost={self.cost}, waited={self.waited:.3f}, local={self.local})"


class AsyncClient:
    """A connection to a quotad cluster for asyncio; the options are those of
    :class:`quotad.Client`.

    gRPC asyncio channels belong to the event loop that made them: the client
    opens its channels lazily, per event loop and per process, so it can be made
    at import time and used from several loops (one at a time each). Across
    ``fork()``: a child opens channels of its own; but gRPC's asyncio stack does not
    survive a fork once it has been used, so in a child forked after grpc.aio ran
    in its parent, the client makes its calls with the synchronous stack in worker
    threads (correct, a little slower; a cancelled acquire then finishes in its
    thread and its grant is left to expire). Close it with ``await client.close()``
    or ``async with``.
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
        self._pid = PidGuard()
        self._by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, List[_AioNode]]" = weakref.WeakKeyDictionary()
        self._abandoned: List[Any] = []
        self._renewals: "set[asyncio.Task[None]]" = set()
        self._cur = 0
        self._down = False
        self._closed = False
        self._sync: Optional[Client] = None  # in a child forked after grpc.aio ran

    def _sync_fallback(self) -> Client:
        if self._sync is None:
            self._sync = Client(
                self.addresses,
                unavailable_timeout=self.unavailable_timeout,
                tenant=self.tenant,
                credentials=self._credentials,
                channel_options=self._options[len(CHANNEL_OPTIONS):],
            )
        return self._sync

    def _get_nodes(self) -> List[_AioNode]:
        global _AIO_USED_PID
        if self._closed:
            raise ClientClosed("quotad: client closed")
        if self._pid.changed():
            self._abandoned.append(dict(self._by_loop))
            self._by_loop = weakref.WeakKeyDictionary()
            self._renewals = set()
            self._pid = PidGuard()
        loop = asyncio.get_running_loop()
        nodes = self._by_loop.get(loop)
        if nodes is None:
            nodes = [_AioNode(a, self._channel(a)) for a in self.addresses]
            self._by_loop[loop] = nodes
            if _AIO_USED_PID is None:
                _AIO_USED_PID = os.getpid()
        return nodes

    def _channel(self, addr: str) -> Any:
        if self._credentials is not None:
            return grpc.aio.secure_channel(addr, self._credentials, options=self._options)
        return grpc.aio.insecure_channel(addr, options=self._options)

    async def close(self) -> None:
        """Stops the lease renewals and closes the connections of this process."""
        if self._closed:
            return
        self._closed = True
        for t in list(self._renewals):
            t.cancel()
        if self._sync is not None:
            self._sync.close()
        if self._pid.changed():
            return
        loop = asyncio.get_running_loop()
        for lp, nodes in list(self._by_loop.items()):
            for n in nodes:
                if lp is loop:
                    await n.channel.close()
        self._by_loop = weakref.WeakKeyDictionary()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _call(self, op: str, pool: str, method: str, request: Any, deadline: Optional[float], prepare: Any = None) -> Any:
        if _aio_unusable():
            # A child forked after grpc.aio ran in its parent: the synchronous stack,
            # in a worker thread.
            if self._closed:
                raise ClientClosed(f"quotad: {op} {pool!r}: client closed", pool=pool)
            return await asyncio.to_thread(self._sync_fallback()._call, op, pool, method, request, deadline, prepare)
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
                    raise _deadline_error(op, pool, last)
            if prepare is not None:
                prepare(request)
            try:
                resp = await getattr(nodes[i].stub, method)(request, timeout=timeout)
                self._down = False
                return resp
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None and time.monotonic() >= deadline - 0.001:
                    raise _deadline_error(op, pool, last) from e
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
            await asyncio.sleep(max(0.0, sleep))
            pause = min(2 * pause, MAX_RETRY_BACKOFF)

    async def acquire(
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
    ) -> AsyncGrant:
        """See :meth:`quotad.Client.acquire`. Cancelling the task cancels the wait
        in quotad's queue."""
        check_acquire(pool, requests, input_tokens, output_tokens, max_wait)
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        cost = Cost(requests, input_tokens, output_tokens)
        rid = request_id or new_request_id()
        req = acquire_request(pool, tenant if tenant is not None else self.tenant, cost, rid)

        def prepare(r: Any) -> None:
            if max_wait is not None:
                r.max_wait.CopyFrom(duration(max(0.0, max_wait - (time.monotonic() - start))))

        try:
            resp = await self._call("acquire", pool, "Acquire", req, deadline, prepare)
        except Unavailable:
            if self._local is None or (deadline is not None and time.monotonic() >= deadline):
                raise
            return await self._acquire_local(pool, cost, rid, start, max_wait, deadline)
        if not resp.granted:
            raise NotGranted(pool, seconds(resp.retry_after))
        g = AsyncGrant(
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
        g._start_renewal()
        return g

    async def _acquire_local(
        self, pool: str, cost: Cost, rid: str, start: float, max_wait: Optional[float], deadline: Optional[float]
    ) -> AsyncGrant:
        assert self._local is not None
        budget = None if max_wait is None else max_wait - (time.monotonic() - start)
        if deadline is not None:
            left = deadline - time.monotonic()
            budget = left if budget is None else min(budget, left)
        wait = self._local.reserve(pool, cost.requests, budget)
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                self._local.give_back(cost.requests)
                raise
        return AsyncGrant(
            self,
            id="local-" + rid,
            pool=pool,
            cost=Cost(max(cost.requests, 1), cost.input_tokens, cost.output_tokens),
            waited=time.monotonic() - start,
            lease_ttl=0.0,
            local=True,
        )

    @contextlib.asynccontextmanager
    async def grant(
        self,
        pool: str,
        *,
        requests: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        tenant: Optional[str] = None,
        max_wait: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> AsyncIterator[AsyncGrant]:
        """``async with client.grant(...) as g:``; see :meth:`quotad.Client.grant`."""
        g = await self.acquire(
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
            await g._finish(e)
            raise
        await g._finish(None)

    async def count_tokens(self, model: str, *, messages: Any = None, text: Optional[str] = None,
                           timeout: Optional[float] = 10.0) -> int:
        """See :meth:`quotad.Client.count_tokens`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        req = pb.CountTokensRequest(model=model, prompt=prompt_message(model, messages, text))
        return int((await self._call("count_tokens", model, "CountTokens", req, deadline)).tokens)

    async def get_pool(self, pool: str, *, timeout: Optional[float] = 10.0) -> PoolInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        return PoolInfo.from_proto(await self._call("get_pool", pool, "GetPool", pb.GetPoolRequest(pool=pool), deadline))


def _deadline_error(op: str, pool: str, last: Optional[grpc.RpcError]) -> QuotadError:
    if last is not None:
        return Unavailable(f"quotad: {op} {pool!r}: timed out while no node was reachable", pool=pool,
                           code=grpc.StatusCode.UNAVAILABLE)
    return DeadlineExceeded(f"quotad: {op} {pool!r}: timeout", pool=pool, code=grpc.StatusCode.DEADLINE_EXCEEDED)
