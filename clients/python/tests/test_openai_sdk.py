"""The real openai SDK (AsyncOpenAI) with 100 concurrent calls on a key limited well
below that (50 requests per 5 s): through quotad no call meets a 429; without it,
the simulator refuses some."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import openai
import pytest

import procs
import quotad
from quotad.httpx import AsyncQuotadTransport, QuotadTransport
from quotad.tokens import QuotadCounter

N = 100


def ask(i: int) -> dict:
    return dict(model="gpt-4o-mini", messages=[{"role": "user", "content": f"Say hello, number {i}."}], max_tokens=16)


async def test_gather_through_quotad_no_429(quotad_addr: str, sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    qc = quotad.AsyncClient([quotad_addr])
    llm = openai.AsyncOpenAI(
        api_key=sim_key, base_url=sim_url, max_retries=0,
        http_client=httpx.AsyncClient(transport=AsyncQuotadTransport("openai/gather", qc, token_counter=QuotadCounter(qc))),
    )
    results = await asyncio.gather(*(llm.chat.completions.create(**ask(i)) for i in range(N)))
    assert len(results) == N and all(r.choices[0].message.content for r in results)
    st = procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")
    assert st["admitted_requests"] == N
    assert st.get("refused_requests", 0) == 0
    # every grant was reported: nothing left in flight
    pool = await qc.get_pool("openai/gather")
    assert pool.in_flight == 0 and pool.raw.unsettled.input_tokens == 0
    await llm.close()
    await qc.close()


async def test_gather_without_quotad_gets_429(sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    llm = openai.AsyncOpenAI(api_key=sim_key, base_url=sim_url, max_retries=0)
    results = await asyncio.gather(*(llm.chat.completions.create(**ask(i)) for i in range(N)), return_exceptions=True)
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert limited, "the simulator should refuse part of 100 concurrent calls"
    st = procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")
    assert st["refused_requests"] == len(limited) > 0
    await llm.close()


def test_sync_transport_reports_429(client: quotad.Client, sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    # openai/overcommitted lets through 20x what the key allows: the simulator
    # answers 429s, which the sync transport passes on and reports RATE_LIMITED.
    llm = openai.OpenAI(api_key=sim_key, base_url=sim_url, max_retries=0,
                        http_client=httpx.Client(transport=QuotadTransport("openai/overcommitted", client)))

    def call(i: int) -> object:
        try:
            return llm.chat.completions.create(**ask(i))
        except openai.RateLimitError as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        results = list(ex.map(call, range(80)))
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert limited
    assert procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")["refused_requests"] == len(limited)
    assert client.get_pool("openai/overcommitted").in_flight == 0
    llm.close()
