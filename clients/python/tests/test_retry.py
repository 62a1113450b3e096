"""Retry on UNAVAILABLE with the same request id, against two fake quotad nodes: the
first answers UNAVAILABLE (a node shutting down), the second grants."""

from __future__ import annotations

from concurrent import futures
from typing import Iterator, List, Tuple

import grpc
import pytest

import quotad
from quotad._proto import quotad_pb2 as pb
from quotad._proto import quotad_pb2_grpc as pb_grpc


class Node(pb_grpc.QuotaServiceServicer):
    def __init__(self, unavailable: bool) -> None:
        self.unavailable = unavailable
        self.request_ids: List[str] = []
        self.reports: List[str] = []

    def Acquire(self, request, context):  # type: ignore[no-untyped-def]
        self.request_ids.append(request.request_id)
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
        r = pb.AcquireResponse(granted=True, grant_id="g-" + request.request_id, cost=request.cost)
        r.lease_ttl.FromSeconds(60)
        return r

    def Report(self, request, context):  # type: ignore[no-untyped-def]
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
        self.reports.append(request.grant_id)
        return pb.ReportResponse(settlement=pb.SETTLEMENT_SETTLED)


@pytest.fixture
def nodes() -> Iterator[List[Tuple[str, Node]]]:
    out, servers = [], []
    for unavailable in (True, False):
        node = Node(unavailable)
        server = grpc.server(futures.ThreadPoolExecutor(4))
        pb_grpc.add_QuotaServiceServicer_to_server(node, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        out.append((f"127.0.0.1:{port}", node))
    yield out
    for s in servers:
        s.stop(None)


def test_retry_same_request_id(nodes: List[Tuple[str, Node]]) -> None:
    (a, down), (b, up) = nodes
    with quotad.Client([a, b]) as c:
        g = c.acquire("p", input_tokens=5)
        assert down.request_ids == up.request_ids and len(up.request_ids) == 1
        assert g.id == "g-" + up.request_ids[0]
        g.report(input_tokens=3)  # the client now starts with the node that answered
        assert up.reports == [g.id]


async def test_retry_same_request_id_async(nodes: List[Tuple[str, Node]]) -> None:
    (a, down), (b, up) = nodes
    async with quotad.AsyncClient([a, b]) as c:
        g = await c.acquire("p", request_id="mine")
        assert down.request_ids == up.request_ids == ["mine"]
        await g.report()
        assert up.reports == ["g-mine"]
