"""httpx transports that put every OpenAI- or Anthropic-shaped request through
quotad, so the SDKs' call sites need no change::

    import httpx, openai, quotad
    from quotad.httpx import AsyncQuotadTransport

    qc = quotad.AsyncClient(["quotad:7070"])
    llm = openai.AsyncOpenAI(http_client=httpx.AsyncClient(
        transport=AsyncQuotadTransport("openai/prod/gpt-4o-mini", qc)))

The same for the sync ``openai.OpenAI(http_client=httpx.Client(transport=QuotadTransport(...)))``
and langchain-openai's ``ChatOpenAI(http_client=..., http_async_client=...)``.
anthropic>=2 accepts httpx2 clients only: use :mod:`quotad.httpx2`'s transports,
``anthropic.AsyncAnthropic(http_client=httpx2.AsyncClient(transport=quotad.httpx2.AsyncQuotadTransport(...)))``.

For each POST to ``/chat/completions``, ``/responses``, ``/embeddings`` (OpenAI) or
``/messages`` (Anthropic) the transport estimates the cost from the JSON body
(input tokens by ``token_counter``, default :class:`quotad.tokens.LocalEstimate`;
output: ``max_completion_tokens`` / ``max_tokens`` / ``max_output_tokens``, times
``n``, else ``default_output_tokens``), acquires it, sends the request, reads the
usage from the response (for streams: OpenAI's final usage chunk, which needs
``stream_options={"include_usage": True}``, the Responses API's
``response.completed``, Anthropic's ``message_start`` and ``message_delta``; a
stream without usage is reported with the input estimate and the streamed text's
length / 4), and reports it with the rate-limit headers; a 429 is reported
RATE_LIMITED with its retry-after. Anthropic input usage is ``input_tokens +
cache_creation_input_tokens``: cache reads do not count toward its ITPM.

openai>=3 uses httpx2 by default and still accepts an httpx client, as above;
:mod:`quotad.httpx2` has the same transports for httpx2 clients (required by
anthropic>=2).
"""

from __future__ import annotations

import httpx as _hx

from ._httpx_impl import build as _build
from ._transport import RequestInfo
from .tokens import LocalEstimate, TokenCounter

QuotadTransport, AsyncQuotadTransport = _build(_hx)

__all__ = ["QuotadTransport", "AsyncQuotadTransport", "RequestInfo", "TokenCounter", "LocalEstimate"]

for _c in (QuotadTransport, AsyncQuotadTransport):
    _c.__module__, _c.__qualname__ = __name__, _c.__name__
