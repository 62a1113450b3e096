"""The asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from typing import Any, AsyncIterator, List, Mapping, Optional

import grpc
import grpc.aio

from ._client import Client
from ._common import CHANNEL_OPTIONS, AcquireCall, ClientBase, GrantBase, Node, Tries, deadline_in, renew_interval
from ._errors import ClientClosed, QuotadError, Unavailable
from ._proto import quotad_pb2 as pb
from ._types import REPORT_TIMEOUT, Outcome, PidGuard, PoolInfo, prompt_message

# The process in which grpc.aio was first used by a client. gRPC's asyncio stack
# does not survive fork(): in a child of that process (a module global is inherited
# by fork) a grpc.aio channel crashes or hangs, while the synchronous stack works.
_AIO_USED_PID: Optional[int] = None


def _aio_unusable() -> bool:
    return _AIO_USED_PID is not None and _AIO_USED_PID != os.getpid()


class AsyncGrant(GrantBase):
    """A cost granted by quotad, for asyncio. Its lease is renewed by a task on the
    event loop until it is reported (``await g.report(...)``, or by leaving
    ``async with client.grant(...)``)."""

    _new_lock = staticmethod(asyncio.Lock)
    _client: "AsyncClient"
    _renewal: Optional["asyncio.Task[None]"] = None

    def _start_renewal(self) -> None:
        if self.lease_ttl > 0 and not self.local:
            self._renewal = asyncio.get_running_loop().create_task(self._renew())
            self._client._renewals.add(self._renewal)
            self._renewal.add_done_callback(self._client._renewals.discard)

    async def _renew(self) -> None:
        req = pb.RenewRequest(grant_id=self.id, pool=self.pool)
        while True:
            interval = renew_interval(self.lease_ttl)
            await asyncio.sleep(interval)
            try:
                self._renewed(await self._client._call("renew", self.pool, "Renew", req, time.monotonic() + interval))
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
        provider_error: str = "",
        timeout: Optional[float] = REPORT_TIMEOUT,
    ) -> None:
        """Settles the grant; see :meth:`quotad.Grant.report`."""
        async with self._lock:
            self._stop_renewal()
            if self._nothing_to_send():
                return
            req = self._report_request(input_tokens, output_tokens, outcome, retry_after, headers,
                                       cache_creation_input_tokens, cache_read_input_tokens, provider_error)
            await self._client._call("report", self.pool, "Report", req, deadline_in(timeout))
            self.reported = True

    async def _finish(self, exc: Optional[BaseException]) -> None:
        if self.reported:
            return
        try:
            # Shielded: a cancelled body still settles its grant.
            await asyncio.shield(self.report(outcome=self._final_outcome(exc)))
        except QuotadError:
            if exc is None:
                raise


class AsyncClient(ClientBase):
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

    def _init_connections(self) -> None:
        self._by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, List[Node]]" = weakref.WeakKeyDictionary()
        self._renewals: "set[asyncio.Task[None]]" = set()
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

    def _get_nodes(self) -> List[Node]:
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
            nodes = [Node(a, self._channel(a)) for a in self.addresses]
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
        tries = Tries(self, op, pool, self._get_nodes(), deadline)
        while True:
            timeout = tries.begin()
            if prepare is not None:
                prepare(request)
            try:
                return tries.succeeded(await getattr(tries.node().stub, method)(request, timeout=timeout))
            except grpc.RpcError as e:
                tries.failed(e)
            pause = tries.next()
            if pause is not None:
                await asyncio.sleep(pause)

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
        a = AcquireCall(pool, requests, input_tokens, output_tokens, tenant if tenant is not None else self.tenant,
                        max_wait, timeout, request_id)
        try:
            resp = await self._call("acquire", pool, "Acquire", a.request, a.deadline, a.prepare)
        except Unavailable:
            if not a.may_fail_open(self._local):
                raise
            return await self._acquire_local(a)
        g = AsyncGrant(self, **a.granted(resp))
        g._start_renewal()
        return g

    async def _acquire_local(self, a: AcquireCall) -> AsyncGrant:
        assert self._local is not None
        wait = self._local.reserve(a.pool, a.cost.requests, a.local_budget())
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                self._local.give_back(a.cost.requests)
                raise
        return AsyncGrant(self, **a.local_grant())

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
        g = await self.acquire(pool, requests=requests, input_tokens=input_tokens, output_tokens=output_tokens,
                               tenant=tenant, max_wait=max_wait, timeout=timeout)
        try:
            yield g
        except BaseException as e:
            await g._finish(e)
            raise
        await g._finish(None)

    async def count_tokens(self, model: str, *, messages: Any = None, text: Optional[str] = None,
                           timeout: Optional[float] = 10.0) -> int:
        """See :meth:`quotad.Client.count_tokens`."""
        req = pb.CountTokensRequest(model=model, prompt=prompt_message(model, messages, text))
        return int((await self._call("count_tokens", model, "CountTokens", req, deadline_in(timeout))).tokens)

    async def get_pool(self, pool: str, *, timeout: Optional[float] = 10.0) -> PoolInfo:
        req = pb.GetPoolRequest(pool=pool)
        return PoolInfo.from_proto(await self._call("get_pool", pool, "GetPool", req, deadline_in(timeout)))

