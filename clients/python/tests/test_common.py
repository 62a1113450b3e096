"""The pure helpers shared by the sync and asyncio clients (quotad._common)."""

from __future__ import annotations

import time
from typing import Any, List

import grpc
import pytest

import quotad
from quotad._common import AcquireCall, Node, Tries, deadline_in, renew_interval
from quotad._proto import quotad_pb2 as pb
from quotad._types import MIN_RENEW_INTERVAL, MIN_RETRY_BACKOFF, duration


class _Client:
    """Just the state Tries reads and writes."""

    def __init__(self, unavailable_timeout: float = 10.0) -> None:
        self.unavailable_timeout = unavailable_timeout
        self._cur = 0
        self._down = False
        self._closed = False


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "boom"


def _nodes(n: int) -> List[Node]:
    return [Node(f"n{i}", grpc.insecure_channel(f"localhost:{1 + i}")) for i in range(n)]


def test_small_helpers() -> None:
    assert deadline_in(None) is None
    d = deadline_in(5)
    assert d is not None and 4 < d - time.monotonic() <= 5
    assert renew_interval(3.0) == 1.0
    assert renew_interval(0.0) == MIN_RENEW_INTERVAL


def test_tries_rounds_and_give_up() -> None:
    c = _Client(unavailable_timeout=10.0)
    c._cur = 1
    t = Tries(c, "acquire", "p", _nodes(2), None)
    assert t.begin() is None and t.node().addr == "n1"
    t.failed(_RpcError(grpc.StatusCode.UNAVAILABLE))
    assert t.next() is None  # the next node at once
    assert c._cur == 0 and t.node().addr == "n0"
    t.begin()
    t.failed(_RpcError(grpc.StatusCode.UNAVAILABLE))
    assert t.next() == pytest.approx(MIN_RETRY_BACKOFF)  # a whole round: pause
    assert t.pause == 2 * MIN_RETRY_BACKOFF
    t.give_up = time.monotonic()  # time is up
    t.begin()
    t.failed(_RpcError(grpc.StatusCode.UNAVAILABLE))
    t.next()
    t.begin()
    t.failed(_RpcError(grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(quotad.Unavailable, match="no node reachable.*boom"):
        t.next()
    assert c._down
    assert t.succeeded("resp") == "resp" and not c._down


def test_tries_errors() -> None:
    c = _Client()
    t = Tries(c, "report", "p", _nodes(1), None)
    t.begin()
    with pytest.raises(quotad.PoolNotFound):
        t.failed(_RpcError(grpc.StatusCode.NOT_FOUND))
    t = Tries(c, "report", "p", _nodes(1), time.monotonic() - 1)
    with pytest.raises(quotad.DeadlineExceeded):
        t.begin()
    t.last = _RpcError(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(quotad.Unavailable, match="timed out while no node was reachable"):
        t.begin()
    c._closed = True
    with pytest.raises(quotad.ClientClosed):
        Tries(c, "report", "p", _nodes(1), None).begin()


def test_acquire_call() -> None:
    a = AcquireCall("p", 2, 10, 20, "t", 1.0, 5.0, "rid")
    assert a.request.request_id == "rid" and a.request.tenant == "t"
    assert a.deadline is not None and a.may_fail_open(object()) and not a.may_fail_open(None)  # type: ignore[arg-type]
    a.prepare(a.request)
    assert 0 < a.request.max_wait.ToTimedelta().total_seconds() <= 1.0
    budget = a.local_budget()
    assert budget is not None and 0 < budget <= 1.0
    local = a.local_grant()
    assert local["id"] == "local-rid" and local["local"] and local["cost"] == quotad.Cost(2, 10, 20)
    assert AcquireCall("p", 0, 0, 0, None, None, None, None).local_grant()["cost"].requests == 1

    with pytest.raises(quotad.NotGranted):
        a.granted(pb.AcquireResponse(granted=False, retry_after=duration(2)))
    resp = pb.AcquireResponse(granted=True, grant_id="g", lease_ttl=duration(3), waited=duration(0.5))
    resp.cost.requests, resp.cost.input_tokens = 2, 10
    g = quotad.Grant(None, **a.granted(resp))  # type: ignore[arg-type]
    assert (g.id, g.pool, g.lease_ttl, g.waited, g.cost) == ("g", "p", 3.0, 0.5, quotad.Cost(2, 10, 0))


def test_grant_state() -> None:
    g: Any = quotad.Grant(None, id="g", pool="p", cost=quotad.Cost(), waited=0.0, lease_ttl=1.0)  # type: ignore[arg-type]
    assert g._final_outcome(None) == quotad.Outcome.SUCCESS
    assert g._final_outcome(quotad.NotSent()) == quotad.Outcome.NOT_SENT
    assert g._final_outcome(RuntimeError()) == quotad.Outcome.FAILED
    g.set_outcome(quotad.Outcome.RATE_LIMITED)
    assert g._final_outcome(RuntimeError()) == quotad.Outcome.RATE_LIMITED
    g.set_usage(7, 8)
    req = g._report_request(None, None, quotad.Outcome.SUCCESS, None, None, 0, 0)
    assert (req.grant_id, req.usage.input_tokens, req.usage.output_tokens) == ("g", 7, 8)
    g._renewed(pb.RenewResponse(lease_ttl=duration(6)))
    assert g.lease_ttl == 6.0
    assert not g._nothing_to_send()
    g.local = True
    assert g._nothing_to_send() and g.reported
    assert repr(g).startswith("Grant(id='g'")
