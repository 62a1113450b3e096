"""Run by test_fork.py in a fresh interpreter: a gunicorn --preload-like parent makes
both clients at import time, uses the sync one, forks workers that use both (the
async one natively, since grpc.aio never ran in the parent), then uses both itself."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys

import quotad

addr = sys.argv[1]
aclient = quotad.AsyncClient([addr])
client = quotad.Client([addr])
client.acquire("demo/fast").report()


async def use_async() -> None:
    async with aclient.grant("demo/fast") as g:
        g.set_usage(1, 1)


def worker(_: int) -> int:
    from quotad import _aio

    assert not _aio._aio_unusable()
    client.acquire("demo/fast").report()
    asyncio.run(use_async())
    return os.getpid()


if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pids = pool.map(worker, range(4))
    assert os.getpid() not in pids
    asyncio.run(use_async())
    client.acquire("demo/fast").report()
    print("ok")
