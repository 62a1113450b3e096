"""LangChain integrations (``pip install quotad[langchain]``).

:class:`QuotadRateLimiter` is a ``BaseRateLimiter`` for ``ChatOpenAI(rate_limiter=...)``
and every other chat model: each model call takes one *request* from a quotad
pool, so the whole fleet shares the provider's request limit. LangChain's limiter
never sees the request nor its usage, so it cannot charge tokens: a pool with
token limits needs the token-aware integration (below, or the httpx transports of
:mod:`quotad.httpx`). It refuses pools with a concurrency limit, since it could
never release the slot.

:class:`QuotadCallbackHandler` (sync) and :class:`AsyncQuotadCallbackHandler`
(asyncio) are token-aware: before each chat model call they acquire the estimated
cost (the messages' text by ``token_counter``, plus the ``max_tokens`` /
``max_completion_tokens`` of the invocation), and after it they report the
``AIMessage.usage_metadata``; a failed call is reported FAILED (a provider 429,
RATE_LIMITED). Pass one in ``config={"callbacks": [handler]}`` or to the model's
``callbacks=``. langchain-anthropic folds cache reads and cache creations into
``input_tokens``: pass ``anthropic=True`` for Anthropic pools and the handler reports
them apart (``input_token_details``), as quotad's Report takes them: cache
creations count toward the input limit, cache reads only where the pool sets
``count_cache_reads``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.outputs import LLMResult
from langchain_core.rate_limiters import BaseRateLimiter

from ._aio import AsyncClient
from ._client import Client
from ._errors import ConcurrencyLimitUnsupported, NotGranted, QuotadError
from ._transport import DEFAULT_OUTPUT_TOKENS, retry_after
from ._types import Outcome
from .tokens import LocalEstimate, TokenCounter

__all__ = ["QuotadRateLimiter", "QuotadCallbackHandler", "AsyncQuotadCallbackHandler"]


def _refuse_concurrent(pool: str, concurrent_limit: int) -> None:
    if concurrent_limit > 0:
        raise ConcurrencyLimitUnsupported(
            f"quotad: pool {pool!r} has a concurrency limit ({concurrent_limit}): LangChain's rate limiter "
            "never says when a call ends, so it could never release the slot; use "
            "quotad.langchain.QuotadCallbackHandler or the quotad.httpx transports instead",
            pool=pool,
        )


class QuotadRateLimiter(BaseRateLimiter):
    """Requests-only limiter over a quotad pool. ``client`` is a
    :class:`quotad.Client` (sync and async calls; async ones run it in a worker
    thread) or a :class:`quotad.AsyncClient` (async calls only). The pool is checked
    with GetPool (at once for a sync client, at the first call for an async one):
    a pool with a concurrency limit raises :class:`quotad.ConcurrencyLimitUnsupported`.
    Each grant is reported at once, so it holds no lease: the request is charged."""

    def __init__(self, pool: str, client: Any, *, tenant: Optional[str] = None) -> None:
        self.pool = pool
        self.client = client
        self.tenant = tenant
        self._checked = False
        if isinstance(client, Client):
            self._check_sync()

    def _check_sync(self) -> None:
        if not self._checked:
            _refuse_concurrent(self.pool, self.client.get_pool(self.pool).concurrent_limit)
            self._checked = True

    def acquire(self, *, blocking: bool = True) -> bool:
        if not isinstance(self.client, Client):
            raise TypeError("quotad: QuotadRateLimiter.acquire needs a quotad.Client (an AsyncClient serves aacquire only)")
        self._check_sync()
        try:
            g = self.client.acquire(self.pool, tenant=self.tenant, max_wait=None if blocking else 0)
        except NotGranted:
            return False
        g.report()
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        if isinstance(self.client, Client):
            return await asyncio.to_thread(self.acquire, blocking=blocking)
        if not self._checked:
            _refuse_concurrent(self.pool, (await self.client.get_pool(self.pool)).concurrent_limit)
            self._checked = True
        try:
            g = await self.client.acquire(self.pool, tenant=self.tenant, max_wait=None if blocking else 0)
        except NotGranted:
            return False
        await g.report()
        return True


class _TokenAware:
    raise_error = True  # acquire errors must stop the call

    def _init(self, pool: str, tenant: Optional[str], max_wait: Optional[float],
              token_counter: Optional[TokenCounter], default_output_tokens: int, anthropic: bool) -> None:
        self.pool = pool
        self.tenant = tenant
        self.max_wait = max_wait
        self.token_counter = token_counter or LocalEstimate()
        self.default_output_tokens = default_output_tokens
        self.anthropic = anthropic
        self._grants: Dict[UUID, Any] = {}
        self._lock = threading.Lock()

    def _bodies(self, messages: List[List[Any]], kwargs: Mapping[str, Any]) -> List[Dict[str, Any]]:
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or ""
        return [{"model": model, "messages": [{"role": getattr(m, "type", ""), "content": getattr(m, "content", m)}
                                              for m in batch]} for batch in messages]

    def _cost(self, messages: List[List[Any]], kwargs: Mapping[str, Any], inp: Optional[int] = None) -> Tuple[int, int, int]:
        params = kwargs.get("invocation_params") or {}
        if inp is None:
            inp = sum(self.token_counter.count_input_tokens("openai.chat", b) for b in self._bodies(messages, kwargs))
        cap = None
        for k in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            v = params.get(k)
            if isinstance(v, int) and v >= 0:
                cap = v
                break
        out = (self.default_output_tokens if cap is None else cap) * max(int(params.get("n") or 1), 1) * len(messages)
        return max(len(messages), 1), inp, out

    def _usage(self, response: LLMResult) -> Dict[str, int]:
        inp = out = cc = cr = 0
        for gens in response.generations:
            for g in gens:
                um = getattr(getattr(g, "message", None), "usage_metadata", None)
                if not um:
                    continue
                i = int(um.get("input_tokens", 0))
                if self.anthropic:
                    details = um.get("input_token_details") or {}
                    c, r = int(details.get("cache_creation", 0) or 0), int(details.get("cache_read", 0) or 0)
                    cc, cr = cc + c, cr + r
                    i -= c + r
                inp += max(i, 0)
                out += int(um.get("output_tokens", 0))
        if not inp and not out and response.llm_output:  # older integrations: llm_output["token_usage"]
            tu = response.llm_output.get("token_usage") or response.llm_output.get("usage") or {}
            inp = int(tu.get("prompt_tokens", tu.get("input_tokens", 0)) or 0)
            out = int(tu.get("completion_tokens", tu.get("output_tokens", 0)) or 0)
        return dict(input_tokens=inp, output_tokens=out, cache_creation_input_tokens=cc, cache_read_input_tokens=cr)

    @staticmethod
    def _error_report(error: BaseException) -> Dict[str, Any]:
        resp = getattr(error, "response", None)
        status = getattr(resp, "status_code", None) or getattr(error, "status_code", None)
        if status == 429:
            headers = getattr(resp, "headers", None) or {}
            return dict(input_tokens=0, output_tokens=0, outcome=Outcome.RATE_LIMITED,
                        retry_after=retry_after(headers), headers=headers)
        from ._types import is_not_sent_error

        if is_not_sent_error(error):
            return dict(input_tokens=0, output_tokens=0, outcome=Outcome.NOT_SENT)
        return dict(outcome=Outcome.FAILED)

    def _pop(self, run_id: UUID) -> Any:
        with self._lock:
            return self._grants.pop(run_id, None)


class QuotadCallbackHandler(_TokenAware, BaseCallbackHandler):
    """Token-aware quotad integration for sync chat model calls (quotad.Client)."""

    def __init__(self, pool: str, client: Client, *, tenant: Optional[str] = None, max_wait: Optional[float] = None,
                 token_counter: Optional[TokenCounter] = None, default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
                 anthropic: bool = False) -> None:
        self._init(pool, tenant, max_wait, token_counter, default_output_tokens, anthropic)
        self.client = client

    def on_chat_model_start(self, serialized: Dict[str, Any], messages: List[List[Any]], *, run_id: UUID,
                            **kwargs: Any) -> None:
        requests, inp, out = self._cost(messages, kwargs)
        g = self.client.acquire(self.pool, requests=requests, input_tokens=inp, output_tokens=out,
                                tenant=self.tenant, max_wait=self.max_wait)
        with self._lock:
            self._grants[run_id] = g

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        g = self._pop(run_id)
        if g is not None:
            g.report(**self._usage(response))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        g = self._pop(run_id)
        if g is not None:
            try:
                g.report(**self._error_report(error))
            except QuotadError:
                pass


class AsyncQuotadCallbackHandler(_TokenAware, AsyncCallbackHandler):
    """Token-aware quotad integration for async chat model calls
    (``ainvoke``, ``abatch``, ``astream``) with a quotad.AsyncClient."""

    def __init__(self, pool: str, client: AsyncClient, *, tenant: Optional[str] = None,
                 max_wait: Optional[float] = None, token_counter: Optional[TokenCounter] = None,
                 default_output_tokens: int = DEFAULT_OUTPUT_TOKENS, anthropic: bool = False) -> None:
        self._init(pool, tenant, max_wait, token_counter, default_output_tokens, anthropic)
        self.client = client

    async def on_chat_model_start(self, serialized: Dict[str, Any], messages: List[List[Any]], *, run_id: UUID,
                                  **kwargs: Any) -> None:
        inp = None
        if hasattr(self.token_counter, "acount_input_tokens"):
            inp = 0
            for b in self._bodies(messages, kwargs):
                inp += await self.token_counter.acount_input_tokens("openai.chat", b)  # type: ignore[attr-defined]
        requests, inp, out = self._cost(messages, kwargs, inp)
        g = await self.client.acquire(self.pool, requests=requests, input_tokens=inp, output_tokens=out,
                                      tenant=self.tenant, max_wait=self.max_wait)
        with self._lock:
            self._grants[run_id] = g

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        g = self._pop(run_id)
        if g is not None:
            await g.report(**self._usage(response))

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        g = self._pop(run_id)
        if g is not None:
            try:
                await g.report(**self._error_report(error))
            except QuotadError:
                pass
