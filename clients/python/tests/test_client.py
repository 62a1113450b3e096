"""The client against a real quotad: acquire, report, errors, renewal, context managers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import quotad


def test_acquire_report(client: quotad.Client) -> None:
    g = client.acquire("demo/tokens", input_tokens=10, output_tokens=5)
    assert g.id and not g.local and g.cost == quotad.Cost(1, 10, 5) and g.lease_ttl > 0
    g.report(input_tokens=7, output_tokens=2)
    assert g.reported
    g.report(input_tokens=7, output_tokens=2)  # a second report sends nothing


def test_errors(client: quotad.Client) -> None:
    with pytest.raises(quotad.PoolNotFound):
        client.acquire("no/such/pool")
    with pytest.raises(quotad.CostTooLarge):
        client.acquire("demo/tokens", input_tokens=10**6)
    with pytest.raises(quotad.InvalidArgument):
        client.acquire("demo/fast", requests=-1)
    with pytest.raises(quotad.InvalidArgument):
        client.acquire("")
    g = client.acquire("demo/slow", max_wait=0)  # the one request of the bucket
    g.report()
    with pytest.raises(quotad.NotGranted) as ei:
        client.acquire("demo/slow", max_wait=0)
    assert 0 < ei.value.retry_after <= 10
    with pytest.raises(quotad.NotGranted):
        client.acquire("demo/slow", max_wait=1)
    # quotad sees the deadline: a wait predicted past it is refused at once.
    t0 = time.monotonic()
    with pytest.raises(quotad.NotGranted):
        client.acquire("demo/slow", timeout=0.5)
    assert time.monotonic() - t0 < 0.4


def test_context_manager_outcomes(client: quotad.Client) -> None:
    with client.grant("demo/tokens", input_tokens=10, output_tokens=10) as g:
        g.set_usage(3, 4)
    assert g.reported
    with pytest.raises(RuntimeError):
        with client.grant("demo/tokens", input_tokens=10) as g2:
            raise RuntimeError("provider failed")
    assert g2.reported
    with pytest.raises(quotad.NotSent):
        with client.grant("demo/tokens", input_tokens=10) as g3:
            raise quotad.NotSent()
    assert g3.reported


def test_lease_renewed_while_body_runs(client: quotad.Client) -> None:
    # demo/lease: lease_ttl 1s. Without renewal the lease would expire and free its slot.
    with client.grant("demo/lease") as g:
        assert g.lease_ttl == pytest.approx(1.0)
        time.sleep(2.2)
        assert client.get_pool("demo/lease").in_flight == 1
    assert client.get_pool("demo/lease").in_flight == 0


def test_threads(client: quotad.Client) -> None:
    errs = []

    def work() -> None:
        try:
            for _ in range(10):
                with client.grant("demo/fast"):
                    pass
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs


async def test_async_client(aclient: quotad.AsyncClient) -> None:
    async with aclient.grant("demo/lease", input_tokens=1) as g:
        await asyncio.sleep(1.5)
        assert (await aclient.get_pool("demo/lease")).in_flight == 1
        g.set_usage(1, 0)
    assert g.reported
    with pytest.raises(quotad.PoolNotFound):
        await aclient.acquire("nope")
    with pytest.raises(quotad.NotGranted):
        await aclient.acquire("demo/slow", max_wait=0)
    gs = await asyncio.gather(*(aclient.acquire("demo/fast") for _ in range(50)))
    await asyncio.gather(*(g.report() for g in gs))
    assert len({g.id for g in gs}) == 50


async def test_async_cancel_reports_failed(aclient: quotad.AsyncClient) -> None:
    async def body() -> None:
        async with aclient.grant("demo/lease"):
            await asyncio.sleep(10)

    t = asyncio.ensure_future(body())
    await asyncio.sleep(0.3)
    assert (await aclient.get_pool("demo/lease")).in_flight == 1
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert (await aclient.get_pool("demo/lease")).in_flight == 0


def test_several_addresses_retry_unavailable(quotad_addr: str) -> None:
    # The first address has nothing listening: the client moves on to the next.
    with quotad.Client(["127.0.0.1:1", quotad_addr]) as c:
        for _ in range(3):
            with c.grant("demo/fast"):
                pass
