"""Usage of streamed responses is read from the stream and reported: OpenAI's final
usage chunk, Anthropic's message_start / message_delta."""

from __future__ import annotations

from typing import Any, List

import anthropic
import httpx
import httpx2
import openai
import pytest

import procs
import quotad
from quotad.httpx import AsyncQuotadTransport
from quotad import httpx2 as qhttpx2


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> List[dict]:
    """Records every report sent by sync and async grants."""
    seen: List[dict] = []
    sync_report, async_report = quotad.Grant.report, quotad.AsyncGrant.report

    def spy(self: Any, *a: Any, **kw: Any) -> Any:
        seen.append(dict(kw, pool=self.pool))
        return sync_report(self, *a, **kw)

    async def aspy(self: Any, *a: Any, **kw: Any) -> Any:
        seen.append(dict(kw, pool=self.pool))
        return await async_report(self, *a, **kw)

    monkeypatch.setattr(quotad.Grant, "report", spy)
    monkeypatch.setattr(quotad.AsyncGrant, "report", aspy)
    return seen


async def test_openai_stream_usage_reported(quotad_addr: str, sim_url: str, sim_key: str, reports: List[dict]) -> None:
    async with quotad.AsyncClient([quotad_addr]) as qc:
        llm = openai.AsyncOpenAI(api_key=sim_key, base_url=sim_url, max_retries=0,
                                 http_client=httpx.AsyncClient(transport=AsyncQuotadTransport("openai/stream", qc)))
        stream = await llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=40, stream=True, stream_options={"include_usage": True})
        usage = None
        text = ""
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                text += ch.delta.content or ""
        assert usage is not None and usage.completion_tokens > 0 and text
        assert len(reports) == 1
        r = reports[0]
        assert (r["pool"], r["input_tokens"], r["output_tokens"], r["outcome"]) == (
            "openai/stream", usage.prompt_tokens, usage.completion_tokens, quotad.Outcome.SUCCESS)
        assert "x-ratelimit-remaining-requests" in reports[0]["headers"]
        p = await qc.get_pool("openai/stream")
        assert p.in_flight == 0 and p.raw.unsettled.output_tokens == 0
        await llm.close()


async def test_anthropic_stream_usage_reported(quotad_addr: str, sim: procs.Proc, sim_key: str, reports: List[dict]) -> None:
    async with quotad.AsyncClient([quotad_addr]) as qc:
        llm = anthropic.AsyncAnthropic(api_key=sim_key, base_url=f"http://{sim.addr}", max_retries=0,
                                       http_client=httpx2.AsyncClient(transport=qhttpx2.AsyncQuotadTransport("anthropic/stream", qc)))
        async with llm.messages.stream(model="claude-sonnet-4-6", max_tokens=48, system="Be brief.",
                                       messages=[{"role": "user", "content": "Tell me a story."}]) as s:
            async for _ in s.text_stream:
                pass
            final = await s.get_final_message()
        assert final.usage.output_tokens > 0
        assert len(reports) == 1
        r = reports[0]
        assert (r["input_tokens"], r["output_tokens"], r["outcome"]) == (
            final.usage.input_tokens, final.usage.output_tokens, quotad.Outcome.SUCCESS)
        assert any(h.startswith("anthropic-ratelimit-") for h in r["headers"])
        p = await qc.get_pool("anthropic/stream")
        assert p.in_flight == 0 and p.raw.unsettled.output_tokens == 0
        await llm.close()


def test_anthropic_sync_messages(client: quotad.Client, sim: procs.Proc, sim_key: str, reports: List[dict]) -> None:
    llm = anthropic.Anthropic(api_key=sim_key, base_url=f"http://{sim.addr}", max_retries=0,
                              http_client=httpx2.Client(transport=qhttpx2.QuotadTransport("anthropic/messages", client)))
    msg = llm.messages.create(model="claude-sonnet-4-6", max_tokens=32,
                              messages=[{"role": "user", "content": "Hello there"}])
    assert len(reports) == 1
    assert (reports[0]["input_tokens"], reports[0]["output_tokens"]) == (msg.usage.input_tokens, msg.usage.output_tokens)
    # Streaming, sync
    with llm.messages.stream(model="claude-sonnet-4-6", max_tokens=32,
                             messages=[{"role": "user", "content": "Hello again"}]) as s:
        for _ in s.text_stream:
            pass
        final = s.get_final_message()
    assert (reports[1]["input_tokens"], reports[1]["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)
    # The transport's estimate is at least what the simulator charged (ceil(chars/4)).
    assert client.get_pool("anthropic/messages").in_flight == 0
    llm.close()


async def test_openai_responses_api(quotad_addr: str, sim_url: str, sim_key: str, reports: List[dict]) -> None:
    async with quotad.AsyncClient([quotad_addr]) as qc:
        llm = openai.AsyncOpenAI(api_key=sim_key, base_url=sim_url, max_retries=0,
                                 http_client=httpx.AsyncClient(transport=AsyncQuotadTransport("openai/stream", qc)))
        r = await llm.responses.create(model="gpt-4o-mini", input="Hello there", max_output_tokens=24)
        assert (reports[0]["input_tokens"], reports[0]["output_tokens"]) == (r.usage.input_tokens, r.usage.output_tokens)
        stream = await llm.responses.create(model="gpt-4o-mini", input="Hello again", max_output_tokens=24, stream=True)
        final = None
        async for ev in stream:
            if ev.type == "response.completed":
                final = ev.response
        assert final is not None
        assert (reports[1]["input_tokens"], reports[1]["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)
        await llm.close()
