"""Pure parts: the token estimate, request costs, stream usage, retry-after."""

from __future__ import annotations

import json

import httpx
import pytest

import quotad
from quotad._transport import StreamUsage, classify, request_info, retry_after
from quotad.httpx import QuotadTransport
from quotad.tokens import LocalEstimate, QuotadCounter


def test_local_estimate() -> None:
    est = LocalEstimate()
    body = {"messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}, {"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert est.count_input_tokens("openai.chat", body) == 3 + 2 * 3 + 3  # ceil(12/4) + 3*2 + 3
    assert est.count_input_tokens("anthropic.messages", {"system": "abcd", "messages": [{"content": "a"}]}) == 2 + 3 + 3
    assert est.count_input_tokens("openai.embeddings", {"input": ["abcde", "ab"]}) == 2 + 1
    assert est.count_input_tokens("openai.responses", {"instructions": "abcd", "input": "abcd"}) == 2 + 3 + 3


def test_request_costs() -> None:
    assert classify("POST", "/v1/chat/completions") == "openai.chat"
    assert classify("GET", "/v1/chat/completions") is None
    assert classify("POST", "/v1/messages") == "anthropic.messages"
    assert classify("POST", "/v1/messages/count_tokens") is None
    b = json.dumps({"model": "m", "messages": [{"content": "abcd"}], "max_completion_tokens": 10, "n": 2}).encode()
    info = request_info("openai.chat", b, LocalEstimate(), 1024)
    assert info and info.cost == quotad.Cost(1, 1 + 3 + 3, 20)
    info = request_info("openai.chat", b'{"messages": []}', LocalEstimate(), 1024)
    assert info and info.cost.output_tokens == 1024
    assert request_info("openai.chat", b"not json", LocalEstimate(), 1024) is None


def test_stream_usage() -> None:
    info = request_info("openai.chat", b'{"messages": [], "stream": true}', LocalEstimate(), 100)
    assert info
    su = StreamUsage(info)
    su.feed(b'data: {"choices": [{"delta": {"content": "hello world!"}}]}\n\ndata: {"choices": [], "usage": {"prompt_')
    assert su.usage() == (info.input_estimate, 3, 0, 0)  # no usage yet: text length / 4
    su.feed(b'tokens": 7, "completion_tokens": 9}}\n\ndata: [DONE]\n\n')
    assert su.usage() == (7, 9, 0, 0)
    ainfo = request_info("anthropic.messages", b'{"messages": [], "max_tokens": 5}', LocalEstimate(), 0)
    assert ainfo
    su = StreamUsage(ainfo)
    su.feed(b'event: message_start\r\ndata: {"type": "message_start", "message": {"usage": {"input_tokens": 11, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 50, "output_tokens": 1}}}\r\n\r\n')
    su.feed(b'event: message_delta\ndata: {"type": "message_delta", "usage": {"output_tokens": 4}}\n\n')
    assert su.usage() == (11, 4, 2, 50)  # cache tokens apart, as Report takes them


def test_retry_after() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({}) is None


def test_passthrough(client: quotad.Client) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"ok": True})

    t = QuotadTransport("demo/fast", client, transport=httpx.MockTransport(handler))
    with httpx.Client(transport=t) as h:
        assert h.get("http://x/v1/models").json() == {"ok": True}  # not understood: untouched
    t2 = QuotadTransport("no/such/pool", client, transport=httpx.MockTransport(handler))
    with httpx.Client(transport=t2) as h:
        assert h.get("http://x/v1/models").status_code == 200
        with pytest.raises(quotad.PoolNotFound):  # understood: goes through quotad
            h.post("http://x/v1/chat/completions", json={"model": "m", "messages": []})
    t3 = QuotadTransport("no/such/pool", client, transport=httpx.MockTransport(handler), passthrough_requests=1)
    with httpx.Client(transport=t3) as h:
        with pytest.raises(quotad.PoolNotFound):  # charged one request
            h.get("http://x/v1/models")


def test_connect_error_reports_not_sent(client: quotad.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = []
    orig = quotad.Grant.report

    def spy(self, *a, **kw):  # type: ignore[no-untyped-def]
        outcomes.append(kw.get("outcome"))
        return orig(self, *a, **kw)

    monkeypatch.setattr(quotad.Grant, "report", spy)
    with httpx.Client(transport=QuotadTransport("demo/tokens", client)) as h:
        with pytest.raises(httpx.ConnectError):
            h.post("http://127.0.0.1:1/v1/chat/completions", json={"model": "m", "messages": [], "max_tokens": 5})
    assert outcomes == [quotad.Outcome.NOT_SENT]
    # the context manager does the same for a connection error raised in its body
    with pytest.raises(httpx.ConnectError):
        with client.grant("demo/tokens"):
            httpx.get("http://127.0.0.1:1/")
    assert outcomes[-1] == quotad.Outcome.NOT_SENT


def test_count_tokens_rpc(client: quotad.Client) -> None:
    n = client.count_tokens("gpt-4o-mini", messages=[{"role": "user", "content": "Hello, world! " * 10}])
    assert 20 <= n <= 60
    assert client.count_tokens("gpt-4o-mini", text="hello") >= 1
    counter = QuotadCounter(client)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, world! " * 10}]}
    assert counter.count_input_tokens("openai.chat", body) == max(n, 35)  # at least ceil(140 chars / 4)
    # unreachable quotad: the local estimate
    with quotad.Client(["127.0.0.1:1"], unavailable_timeout=0.2) as down:
        assert QuotadCounter(down).count_input_tokens("openai.chat", body) == LocalEstimate().count_input_tokens("openai.chat", body)


async def test_count_tokens_async(aclient: quotad.AsyncClient) -> None:
    n = await aclient.count_tokens("gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    assert n >= 1
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    assert await QuotadCounter(aclient).acount_input_tokens("openai.chat", body) == max(n, 2)
