"""Fixtures: a real quotad process and the provider simulator on loopback ports,
shared by the whole session; each test uses its own pool and simulator API key."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import procs
import quotad

POOLS = [
    procs.mirror_pool("openai/gather", "openai"),
    {"name": "openai/overcommitted", "limits": [{"resource": "requests", "amount": 1000, "per": "1s", "initial": "full"}]},
    procs.mirror_pool("openai/langchain", "openai"),
    procs.mirror_pool("openai/langchain-tokens", "openai"),
    procs.mirror_pool("openai/procs", "openai"),
    procs.mirror_pool("openai/stream", "openai"),
    procs.mirror_pool("anthropic/stream", "anthropic"),
    procs.mirror_pool("anthropic/messages", "anthropic"),
    procs.mirror_pool("openai/prod/gpt-4o-mini", "openai"),  # the README example
    {"name": "demo/fast", "limits": [{"resource": "requests", "amount": 1000, "per": "second", "initial": "full"}]},
    {"name": "demo/tokens", "limits": [
        {"resource": "requests", "amount": 1000, "per": "second", "initial": "full"},
        {"resource": "tokens", "amount": 1000, "per": "second", "initial": "full"}]},
    {"name": "demo/slow", "limits": [{"resource": "requests", "amount": 1, "per": "10s", "initial": "full"}]},
    {"name": "demo/lease", "lease_ttl": "1s", "concurrent": 4,
     "limits": [{"resource": "requests", "amount": 1000, "per": "second", "initial": "full"}]},
    {"name": "demo/concurrent", "concurrent": 2,
     "limits": [{"resource": "requests", "amount": 1000, "per": "second", "initial": "full"}]},
    {"name": "demo/lc-requests", "limits": [{"resource": "requests", "amount": 5, "per": "second", "burst": 1, "initial": "full"}]},
]


@pytest.fixture(scope="session")
def sim() -> Iterator[procs.Proc]:
    p = procs.start_sim()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def sim_url(sim: procs.Proc) -> str:
    return f"http://{sim.addr}/v1"


@pytest.fixture(scope="session")
def quotad_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Proc]:
    cfg = procs.write_config(tmp_path_factory.mktemp("quotad") / "quotad.yaml", POOLS)
    p = procs.start_quotad(cfg)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def quotad_addr(quotad_proc: procs.Proc) -> str:
    assert quotad_proc.addr
    return quotad_proc.addr


@pytest.fixture(scope="session")
def client(quotad_addr: str) -> Iterator[quotad.Client]:
    c = quotad.Client([quotad_addr])
    yield c
    c.close()


@pytest.fixture
async def aclient(quotad_addr: str):  # type: ignore[no-untyped-def]
    c = quotad.AsyncClient([quotad_addr])
    yield c
    await c.close()


_keys = itertools.count()


@pytest.fixture
def sim_key() -> str:
    """A fresh simulator API key: its own, full buckets."""
    return f"sk-test-{next(_keys)}-{uuid.uuid4().hex[:8]}"
