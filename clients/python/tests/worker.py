"""One of the separate processes of test_processes.py: N concurrent provider calls
through quotad, in one of three styles (a threaded web server, an asyncio worker,
a LangChain batch job). Prints a JSON summary."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys

import httpx
import openai

import quotad
from quotad.httpx import AsyncQuotadTransport, QuotadTransport


def main() -> None:
    style, addr, base_url, key, pool, n = sys.argv[1:7]
    count = int(n)
    prompts = [f"{style} says hello, number {i}." for i in range(count)]
    errors: list = []
    if style == "threads":
        qc = quotad.Client([addr])
        llm = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0,
                            http_client=httpx.Client(transport=QuotadTransport(pool, qc, tenant=style)))

        def call(p: str) -> None:
            try:
                llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": p}], max_tokens=16)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(call, prompts))
        qc.close()
    elif style == "asyncio":
        async def run() -> None:
            async with quotad.AsyncClient([addr]) as qc:
                llm = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, http_client=httpx.AsyncClient(
                    transport=AsyncQuotadTransport(pool, qc, tenant=style)))
                res = await asyncio.gather(*(llm.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": p}], max_tokens=16) for p in prompts),
                    return_exceptions=True)
                errors.extend(repr(r) for r in res if isinstance(r, BaseException))
        asyncio.run(run())
    else:
        from langchain_openai import ChatOpenAI

        async def run() -> None:
            async with quotad.AsyncClient([addr]) as qc:
                llm = ChatOpenAI(model="gpt-4o-mini", api_key=key, base_url=base_url, max_retries=0, max_tokens=16,
                                 http_async_client=httpx.AsyncClient(transport=AsyncQuotadTransport(pool, qc, tenant=style)))
                res = await llm.abatch(prompts, config={"max_concurrency": count}, return_exceptions=True)
                errors.extend(repr(r) for r in res if isinstance(r, BaseException))
        asyncio.run(run())
    print(json.dumps({"style": style, "calls": count, "errors": errors}))


if __name__ == "__main__":
    main()
