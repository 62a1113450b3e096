"""With quotad stopped: fail closed (Unavailable) by default, or fail open to a local
limiter at the rate the caller set, never unlimited."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import openai
import pytest

import procs
import quotad
from quotad.httpx import AsyncQuotadTransport

POOLS = [{"name": "p", "limits": [{"resource": "requests", "amount": 1000, "per": "second", "initial": "full"}]}]


@pytest.fixture
def stopped_quotad(tmp_path: Path) -> str:
    """The address of a quotad that served, then was stopped."""
    node = procs.start_quotad(procs.write_config(tmp_path / "q.yaml", POOLS))
    assert node.addr
    with quotad.Client([node.addr]) as c:
        c.acquire("p").report()
    node.stop()
    return node.addr


def test_fail_closed(stopped_quotad: str) -> None:
    with quotad.Client([stopped_quotad], unavailable_timeout=0.5) as c:
        t0 = time.monotonic()
        with pytest.raises(quotad.Unavailable):
            c.acquire("p")
        assert time.monotonic() - t0 < 3
        with pytest.raises(quotad.Unavailable):  # later calls try each address once
            c.acquire("p")


async def test_fail_closed_async_transport(stopped_quotad: str, sim_url: str, sim_key: str) -> None:
    async with quotad.AsyncClient([stopped_quotad], unavailable_timeout=0.5) as qc:
        llm = openai.AsyncOpenAI(api_key=sim_key, base_url=sim_url, max_retries=0,
                                 http_client=httpx.AsyncClient(transport=AsyncQuotadTransport("p", qc)))
        # The SDK passes the transport's error through as it is.
        with pytest.raises(quotad.Unavailable):
            await llm.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)


def test_fail_open_is_rate_limited(stopped_quotad: str) -> None:
    with quotad.Client([stopped_quotad], unavailable_timeout=0.3, fail_open_rate=10, fail_open_burst=2) as c:
        t0 = time.monotonic()
        grants = [c.acquire("p") for _ in range(7)]
        elapsed = time.monotonic() - t0
        assert all(g.local for g in grants)
        # 2 at once, then 5 at 10/s: at least 0.5 s, never unlimited.
        assert elapsed >= 0.45
        for g in grants:
            g.report(input_tokens=1)  # does nothing for a local grant
        with pytest.raises(quotad.NotGranted):
            for _ in range(5):
                c.acquire("p", max_wait=0)


async def test_fail_open_async(stopped_quotad: str) -> None:
    async with quotad.AsyncClient([stopped_quotad], unavailable_timeout=0.3, fail_open_rate=20, fail_open_burst=1) as c:
        t0 = time.monotonic()
        gs = await asyncio.gather(*(c.acquire("p") for _ in range(5)))
        assert all(g.local for g in gs) and time.monotonic() - t0 >= 0.19
        async with c.grant("p") as g:
            assert g.local


def test_fail_open_needs_a_rate() -> None:
    with pytest.raises(quotad.InvalidArgument):
        quotad.Client(["127.0.0.1:1"], fail_open_rate=0)
