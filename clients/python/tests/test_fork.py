"""A client made (and used) before fork() works in the forked children, as with
gunicorn's preload or Celery's prefork pool. In this process grpc.aio has already
run, so forked children take the AsyncClient's synchronous fallback; the fresh
interpreter of fork_worker.py covers the native path."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import quotad

_client: quotad.Client


def _child(n: int) -> int:
    # A forked child: the client opens channels of its own on first use.
    for _ in range(n):
        with _client.grant("demo/fast") as g:
            g.set_usage(1, 1)
    return os.getpid()


def test_client_survives_fork(quotad_addr: str) -> None:
    global _client
    _client = quotad.Client([quotad_addr])
    _client.acquire("demo/fast").report()  # used in the parent before the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        pids = pool.map(_child, [3, 3, 3, 3])
    assert os.getpid() not in pids
    _client.acquire("demo/fast").report()  # and still works in the parent
    _client.close()


_aclient: quotad.AsyncClient


def _achild(n: int) -> int:
    async def run() -> None:
        for _ in range(n):
            async with _aclient.grant("demo/fast"):
                pass

    asyncio.run(run())
    return os.getpid()


def test_async_client_survives_fork(quotad_addr: str) -> None:
    global _aclient
    _aclient = quotad.AsyncClient([quotad_addr])

    async def use() -> None:
        await (await _aclient.acquire("demo/fast")).report()

    asyncio.run(use())  # used in the parent, on a loop that is gone after the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        assert len(set(pool.map(_achild, [2, 2, 2]))) >= 1
    asyncio.run(use())  # a new loop in the parent: new channels


def test_preload_then_fork_fresh_interpreter(quotad_addr: str) -> None:
    worker = Path(__file__).with_name("fork_worker.py")
    p = subprocess.Popen([sys.executable, str(worker), quotad_addr], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise
    assert p.returncode == 0 and out.strip().endswith("ok"), err
