"""Every error reason a client can meet on one node, triggered against a real
quotad process: each raises its own exception class, with the reason kept."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, List

import grpc
import pytest

import procs
import quotad
from quotad._proto import errors_pb2
from quotad._proto import quotad_pb2 as pb
from quotad._proto import quotad_pb2_grpc

POOLS = [
    {"name": "tiny", "max_waiters": 2, "limits": [
        {"resource": "requests", "amount": 1, "per": "hour", "initial": "full"},
        {"resource": "tokens", "amount": 100, "per": "hour", "initial": "full"}]},
    {"name": "spent", "provider": "openai",
     "limits": [{"resource": "requests", "amount": 100, "per": "minute", "initial": "full"}]},
    {"name": "doomed", "limits": [{"resource": "requests", "amount": 1, "per": "hour", "initial": "empty"}]},
]


def wait_for(cond: Callable[[], bool]) -> None:
    """Polls cond: the events waited for (a waiter queued in another process)
    have no notification to wait on."""
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, "condition not met within 10s"
        time.sleep(0.01)


def in_thread(fn: Callable[[], Any]) -> List[BaseException]:
    """Runs fn in a thread; the returned list gets what it raised."""
    raised: List[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            raised.append(e)

    threading.Thread(target=run, daemon=True).start()
    return raised


def test_every_reason_raises_its_own_error(tmp_path: Path) -> None:
    cfg = procs.write_config(tmp_path / "quotad.yaml", POOLS)
    node = procs.start_quotad(cfg, ["--config-interval", "50ms"])
    c = quotad.Client([node.addr], unavailable_timeout=1.0)  # type: ignore[list-item]
    try:
        def depth(pool: str) -> int:
            return c.get_pool(pool).waiters

        def check(exc: BaseException, cls: type, reason: int) -> None:
            assert type(exc) is cls, f"{exc!r} is not a {cls.__name__}"
            assert isinstance(exc, quotad.QuotadError)
            assert exc.reason == errors_pb2.ErrorReason.Name(reason), exc.reason  # type: ignore[arg-type]

        with pytest.raises(quotad.PoolNotFound) as e:
            c.acquire("nope")
        check(e.value, quotad.PoolNotFound, errors_pb2.POOL_NOT_FOUND)

        with pytest.raises(quotad.CostTooLarge) as e:
            c.acquire("tiny", input_tokens=101)
        check(e.value, quotad.CostTooLarge, errors_pb2.COST_TOO_LARGE)

        g = c.acquire("tiny", request_id="r-1")
        with pytest.raises(quotad.RequestIdReused) as e:
            c.acquire("tiny", input_tokens=5, request_id="r-1")
        check(e.value, quotad.RequestIdReused, errors_pb2.REQUEST_ID_REUSED)

        # The bucket is spent for an hour: two waiters fill the queue (max_waiters 2).
        # They wait without a timeout (one shorter than the predicted wait is
        # refused at once), on a client of their own that closing ends.
        waiting = quotad.Client([node.addr])  # type: ignore[list-item]
        first = in_thread(lambda: waiting.acquire("tiny"))
        second = in_thread(lambda: waiting.acquire("tiny"))
        wait_for(lambda: depth("tiny") == 2)
        with pytest.raises(quotad.QueueFull) as e:
            c.acquire("tiny")
        check(e.value, quotad.QueueFull, errors_pb2.QUEUE_FULL)
        waiting.close()
        wait_for(lambda: len(first) == 1 and len(second) == 1)
        wait_for(lambda: depth("tiny") == 0)
        g.report()

        s = c.acquire("spent")
        s.report(outcome=quotad.Outcome.FAILED, provider_error="insufficient_quota")
        with pytest.raises(quotad.QuotaExhausted) as e:
            c.acquire("spent")
        check(e.value, quotad.QuotaExhausted, errors_pb2.QUOTA_EXHAUSTED)

        # A call waits in "doomed" (empty for an hour) while the pool is removed.
        removed = in_thread(lambda: c.acquire("doomed"))
        wait_for(lambda: depth("doomed") == 1)
        procs.write_config(tmp_path / "quotad.yaml", POOLS[:2])
        wait_for(lambda: len(removed) == 1)
        check(removed[0], quotad.PoolRemoved, errors_pb2.POOL_REMOVED)

        # SIGTERM answers waiters UNAVAILABLE with SHUTTING_DOWN (on the wire, as a
        # raw stub sees it); the client, with no other node, gives up Unavailable.
        channel = grpc.insecure_channel(node.addr)  # type: ignore[arg-type]
        stub = quotad_pb2_grpc.QuotaServiceStub(channel)
        raw = in_thread(lambda: stub.Acquire(pb.AcquireRequest(pool="tiny")))
        client_side = in_thread(lambda: c.acquire("tiny"))
        wait_for(lambda: depth("tiny") == 2)
        node.stop()
        wait_for(lambda: len(raw) == 1 and len(client_side) == 1)
        err = raw[0]
        assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.UNAVAILABLE
        shut = quotad._errors.from_rpc_error("acquire", "tiny", err)
        check(shut, quotad.ShuttingDown, errors_pb2.SHUTTING_DOWN)
        assert isinstance(client_side[0], quotad.Unavailable), repr(client_side[0])
        channel.close()
    finally:
        c.close()
        node.stop()
