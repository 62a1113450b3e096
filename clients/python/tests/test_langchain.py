"""LangChain: the real langchain-openai ChatOpenAI with 100 concurrent calls on a key
limited to 50 requests per 5 s, through quotad: no 429."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langchain_openai import ChatOpenAI

import procs
import quotad
from quotad.httpx import AsyncQuotadTransport
from quotad.langchain import AsyncQuotadCallbackHandler, QuotadCallbackHandler, QuotadRateLimiter

N = 100


async def test_abatch_through_transport_no_429(quotad_addr: str, sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    async with quotad.AsyncClient([quotad_addr]) as qc:
        llm = ChatOpenAI(model="gpt-4o-mini", api_key=sim_key, base_url=sim_url, max_retries=0, max_tokens=16,
                         http_async_client=httpx.AsyncClient(transport=AsyncQuotadTransport("openai/langchain", qc)))
        out = await llm.abatch([f"Say hello, number {i}." for i in range(N)], config={"max_concurrency": N})
        assert len(out) == N and all(m.content for m in out)
        st = procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")
        assert st["admitted_requests"] == N and st.get("refused_requests", 0) == 0


async def test_gather_token_aware_callback_no_429(quotad_addr: str, sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    async with quotad.AsyncClient([quotad_addr]) as qc:
        handler = AsyncQuotadCallbackHandler("openai/langchain-tokens", qc)
        llm = ChatOpenAI(model="gpt-4o-mini", api_key=sim_key, base_url=sim_url, max_retries=0, max_tokens=16)
        out = await asyncio.gather(*(llm.ainvoke(f"Say hello, number {i}.", config={"callbacks": [handler]})
                                     for i in range(N)))
        assert all(m.usage_metadata and m.usage_metadata["output_tokens"] > 0 for m in out)
        st = procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")
        assert st["admitted_requests"] == N and st.get("refused_requests", 0) == 0
        p = await qc.get_pool("openai/langchain-tokens")
        assert p.in_flight == 0 and p.raw.unsettled.input_tokens == 0 and not handler._grants


def test_sync_callback_reports_usage(client: quotad.Client, sim_url: str, sim_key: str) -> None:
    handler = QuotadCallbackHandler("openai/langchain-tokens", client)
    llm = ChatOpenAI(model="gpt-4o-mini", api_key=sim_key, base_url=sim_url, max_retries=0, max_tokens=16,
                     callbacks=[handler])
    msg = llm.invoke("Hello")
    assert msg.usage_metadata["output_tokens"] > 0
    assert not handler._grants and client.get_pool("openai/langchain-tokens").in_flight == 0


async def test_rate_limiter(client: quotad.Client, quotad_addr: str, sim_url: str, sim_key: str) -> None:
    # demo/lc-requests: 5 requests per second, burst 1.
    limiter = QuotadRateLimiter("demo/lc-requests", client)
    llm = ChatOpenAI(model="gpt-4o-mini", api_key=sim_key, base_url=sim_url, max_retries=0, max_tokens=8,
                     rate_limiter=limiter)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await llm.abatch(["a", "b", "c", "d"])
    assert loop.time() - t0 >= 0.5  # 3 of the 4 waited 200 ms each
    assert limiter.acquire(blocking=False) in (True, False)
    async with quotad.AsyncClient([quotad_addr]) as qc:
        alim = QuotadRateLimiter("demo/lc-requests", qc)
        assert await alim.aacquire()


async def test_rate_limiter_refuses_concurrency_limit(client: quotad.Client, quotad_addr: str) -> None:
    with pytest.raises(quotad.ConcurrencyLimitUnsupported):
        QuotadRateLimiter("demo/concurrent", client)
    async with quotad.AsyncClient([quotad_addr]) as qc:
        with pytest.raises(quotad.ConcurrencyLimitUnsupported):
            await QuotadRateLimiter("demo/concurrent", qc).aacquire()


async def test_abatch_without_quotad_gets_429(sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    llm = ChatOpenAI(model="gpt-4o-mini", api_key=sim_key, base_url=sim_url, max_retries=0, max_tokens=16)
    out = await llm.abatch([f"Say hello, number {i}." for i in range(N)], config={"max_concurrency": N},
                           return_exceptions=True)
    failed = [o for o in out if isinstance(o, Exception)]
    assert failed and procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")["refused_requests"] == len(failed)


def test_sync_chatopenai_through_transport(client: quotad.Client, sim_url: str, sim_key: str) -> None:
    from quotad.httpx import QuotadTransport

    llm = ChatOpenAI(model="gpt-4o-mini", api_key=sim_key, base_url=sim_url, max_retries=0, max_tokens=8,
                     http_client=httpx.Client(transport=QuotadTransport("openai/langchain", client)))
    out = llm.batch(["a", "b", "c"])
    assert all(m.content for m in out)
    assert client.get_pool("openai/langchain").in_flight == 0
