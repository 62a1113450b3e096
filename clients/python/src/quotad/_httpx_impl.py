"""The httpx transports, written once for any httpx flavour module ``hx`` (httpx,
or httpx2 which openai>=3 and anthropic>=2 use by default)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, Optional, Tuple, Type

from ._aio import AsyncClient
from ._client import Client
from ._errors import QuotadError
from ._transport import (
    DEFAULT_OUTPUT_TOKENS,
    PoolSelector,
    RequestInfo,
    StreamUsage,
    classify,
    request_info,
    retry_after,
    usage_from_body,
)
from ._types import Cost, Outcome, is_not_sent_error
from .tokens import Fixed, LocalEstimate, TokenCounter


class _Plan:
    """What the transport does with one request."""

    __slots__ = ("pool", "info", "cost")

    def __init__(self, pool: str, info: Optional[RequestInfo], cost: Cost) -> None:
        self.pool, self.info, self.cost = pool, info, cost


class _Common:
    """What the sync and async transports share: the options, and what to charge
    and report for a request. ``_new_transport`` is the default inner transport."""

    _new_transport: Any

    def __init__(
        self,
        pool: PoolSelector,
        client: Any,
        *,
        transport: Optional[Any] = None,
        tenant: Optional[str] = None,
        max_wait: Optional[float] = None,
        token_counter: Optional[TokenCounter] = None,
        default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        passthrough_requests: Optional[int] = None,
    ) -> None:
        self.pool = pool
        self.tenant = tenant
        self.max_wait = max_wait
        self.token_counter: TokenCounter = token_counter or LocalEstimate()
        self.default_output_tokens = default_output_tokens
        self.passthrough_requests = passthrough_requests
        self.client = client
        self.transport = transport if transport is not None else self._new_transport()

    def _acquire_args(self, plan: _Plan) -> Dict[str, Any]:
        return dict(requests=plan.cost.requests, input_tokens=plan.cost.input_tokens,
                    output_tokens=plan.cost.output_tokens, tenant=self.tenant, max_wait=self.max_wait)

    def _plan(self, method: str, path: str, body: bytes, counter: Optional[TokenCounter] = None) -> Optional[_Plan]:
        api = classify(method, path)
        info = request_info(api, body, counter or self.token_counter, self.default_output_tokens) if api else None
        if info is not None:
            pool = self.pool(info) if callable(self.pool) else self.pool
            return _Plan(pool, info, info.cost) if pool else None
        if self.passthrough_requests and isinstance(self.pool, str):
            return _Plan(self.pool, None, Cost(self.passthrough_requests, 0, 0))
        return None

    @staticmethod
    def _settle(plan: _Plan, status: int, headers: Any, usage: Optional[Tuple[int, ...]]) -> Dict[str, Any]:
        """The report arguments for a complete response."""
        est = (plan.info.input_estimate, plan.cost.output_tokens, 0, 0) if plan.info else (0, 0, 0, 0)
        if status == 429:
            return dict(input_tokens=0, output_tokens=0, outcome=Outcome.RATE_LIMITED,
                        retry_after=retry_after(headers), headers=headers)
        if status >= 400:
            u = usage or (est[0], 0, 0, 0)
            outcome = Outcome.FAILED
        else:
            u = usage or est
            outcome = Outcome.SUCCESS
        return dict(input_tokens=u[0], output_tokens=u[1], cache_creation_input_tokens=u[2],
                    cache_read_input_tokens=u[3], outcome=outcome, headers=headers)

    @classmethod
    def _settle_body(cls, hx: Any, plan: _Plan, resp: Any, raw: bytes) -> Dict[str, Any]:
        """The report arguments for a complete response whose body is ``raw``."""
        data = _parse_json(hx, resp.status_code, resp.headers, raw)
        usage = usage_from_body(plan.info.api, data) if plan.info else None
        return cls._settle(plan, resp.status_code, resp.headers, usage)


class _StreamState:
    """The usage read from a streamed response, and its report once it ends
    (``report``: the grant's report, a function or a coroutine function)."""

    def __init__(self, inner: Any, report: Any, plan: _Plan, status: int, headers: Any) -> None:
        self._inner, self._report, self._plan = inner, report, plan
        self._status, self._headers = status, headers
        self._usage = StreamUsage(plan.info) if plan.info else None
        self._done = False

    def _feed(self, chunk: bytes) -> None:
        if self._usage is not None:
            self._usage.feed(chunk)

    def _final_args(self, failed: bool) -> Optional[Dict[str, Any]]:
        """The report arguments, the first time the stream ends (else None)."""
        if self._done:
            return None
        self._done = True
        args = _Common._settle(self._plan, self._status, self._headers, self._usage.usage() if self._usage else None)
        if failed and args["outcome"] == Outcome.SUCCESS:
            args["outcome"] = Outcome.FAILED
        return args


def _is_sse(headers: Any) -> bool:
    return str(headers.get("content-type", "")).startswith("text/event-stream") and headers.get(
        "content-encoding", "identity"
    ) in ("", "identity")


def _parse_json(hx: Any, status: int, headers: Any, raw: bytes) -> Any:
    tmp = hx.Response(status, headers=headers, stream=hx.ByteStream(raw))
    tmp.read()
    try:
        return tmp.json()
    except ValueError:
        return None


def build(hx: Any) -> Tuple[Type[Any], Type[Any]]:
    """Returns (QuotadTransport, AsyncQuotadTransport) for the httpx flavour hx."""

    def _response(resp: Any, request: Any, stream: Any) -> Any:
        return hx.Response(resp.status_code, headers=resp.headers, extensions=resp.extensions, request=request,
                           stream=stream)

    class _SyncStream(_StreamState, hx.SyncByteStream):  # type: ignore[name-defined, misc]
        def __iter__(self) -> Any:
            try:
                for chunk in self._inner:
                    self._feed(chunk)
                    yield chunk
            except BaseException:
                self._finish(failed=True)
                raise
            self._finish()

        def _finish(self, failed: bool = False) -> None:
            args = self._final_args(failed)
            if args is None:
                return
            try:
                self._report(**args)
            except QuotadError:
                pass  # the lease runs out; quotad keeps the estimate as charged

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._finish()

    class _AsyncStream(_StreamState, hx.AsyncByteStream):  # type: ignore[name-defined, misc]
        async def __aiter__(self) -> Any:
            try:
                async for chunk in self._inner:
                    self._feed(chunk)
                    yield chunk
            except BaseException:
                await self._finish(failed=True)
                raise
            await self._finish()

        async def _finish(self, failed: bool = False) -> None:
            args = self._final_args(failed)
            if args is None:
                return
            try:
                await asyncio.shield(self._report(**args))
            except QuotadError:
                pass

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                await self._finish()

    class QuotadTransport(_Common, hx.BaseTransport):  # type: ignore[name-defined, misc]
        """An httpx transport that takes a quotad grant for every OpenAI- or
        Anthropic-shaped request, sends it through ``transport`` (default: a new
        ``HTTPTransport``), and reports the usage read from the response.

        ``pool`` is a pool name, or a function of the :class:`RequestInfo` (api,
        model, stream, cost) returning one (None: pass through). Requests it does
        not understand pass through untouched, or are charged
        ``passthrough_requests`` requests when set. A 429 is reported
        RATE_LIMITED with the provider's retry-after and rate-limit headers.
        quotad's errors (:class:`quotad.QuotadError`: Unavailable when failing
        closed, NotGranted with ``max_wait``, ...) propagate from the SDK call as
        they are (openai>=3; older SDKs wrap them in their connection error)."""

        _new_transport = hx.HTTPTransport
        client: Client

        def handle_request(self, request: Any) -> Any:
            plan = self._plan(request.method, request.url.path, request.read())
            if plan is None:
                return self.transport.handle_request(request)
            g = self.client.acquire(plan.pool, **self._acquire_args(plan))
            try:
                resp = self.transport.handle_request(request)
            except BaseException as e:
                _report_error_sync(g, plan, e)
                raise
            if _is_sse(resp.headers) and resp.status_code < 400:
                return _response(resp, request, _SyncStream(resp.stream, g.report, plan, resp.status_code, resp.headers))
            try:
                raw = b"".join(resp.stream)
            except BaseException as e:
                _report_error_sync(g, plan, e, sent=True)
                raise
            finally:
                resp.stream.close()
            try:
                g.report(**self._settle_body(hx, plan, resp, raw))
            except QuotadError:
                pass
            return _response(resp, request, hx.ByteStream(raw))

        def close(self) -> None:
            self.transport.close()

    class AsyncQuotadTransport(_Common, hx.AsyncBaseTransport):  # type: ignore[name-defined, misc]
        """The asyncio twin of :class:`QuotadTransport`; ``client`` is a
        :class:`quotad.AsyncClient` (or a :class:`quotad.Client`, then called in a
        worker thread)."""

        _new_transport = hx.AsyncHTTPTransport

        async def _acquire(self, plan: _Plan) -> Any:
            kw = self._acquire_args(plan)
            client = self.client
            if isinstance(client, AsyncClient):
                ag = await client.acquire(plan.pool, **kw)  # type: ignore[arg-type]
                return ag, ag.report
            g = await asyncio.to_thread(client.acquire, plan.pool, **kw)

            async def report(**a: Any) -> None:
                await asyncio.to_thread(g.report, **a)

            return g, report

        async def handle_async_request(self, request: Any) -> Any:
            body = await request.aread()
            counter = None
            api = classify(request.method, request.url.path)
            if api and hasattr(self.token_counter, "acount_input_tokens"):
                try:
                    data = json.loads(body or b"null")
                except (ValueError, UnicodeDecodeError):
                    data = None
                if isinstance(data, dict):
                    counter = Fixed(await self.token_counter.acount_input_tokens(api, data))  # type: ignore[attr-defined]
            plan = self._plan(request.method, request.url.path, body, counter)
            if plan is None:
                return await self.transport.handle_async_request(request)
            g, report = await self._acquire(plan)
            try:
                resp = await self.transport.handle_async_request(request)
            except BaseException as e:
                await _report_error_async(report, plan, e)
                raise
            if _is_sse(resp.headers) and resp.status_code < 400:
                return _response(resp, request, _AsyncStream(resp.stream, report, plan, resp.status_code, resp.headers))
            try:
                raw = b"".join([c async for c in resp.stream])
            except BaseException as e:
                await _report_error_async(report, plan, e, sent=True)
                raise
            finally:
                await resp.stream.aclose()
            try:
                await asyncio.shield(report(**self._settle_body(hx, plan, resp, raw)))
            except QuotadError:
                pass
            return _response(resp, request, hx.ByteStream(raw))

        async def aclose(self) -> None:
            await self.transport.aclose()

    return QuotadTransport, AsyncQuotadTransport


def _error_args(plan: _Plan, e: BaseException, sent: bool) -> Dict[str, Any]:
    if not sent and is_not_sent_error(e):
        return dict(input_tokens=0, output_tokens=0, outcome=Outcome.NOT_SENT)
    inp = plan.info.input_estimate if plan.info else 0
    return dict(input_tokens=inp, output_tokens=0, outcome=Outcome.FAILED)


def _report_error_sync(g: Any, plan: _Plan, e: BaseException, sent: bool = False) -> None:
    try:
        g.report(**_error_args(plan, e, sent))
    except QuotadError:
        pass


async def _report_error_async(report: Any, plan: _Plan, e: BaseException, sent: bool = False) -> None:
    try:
        await asyncio.shield(report(**_error_args(plan, e, sent)))
    except QuotadError:
        pass
