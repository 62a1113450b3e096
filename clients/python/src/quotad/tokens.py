"""Token estimates for a provider request, before it is sent.

A :class:`TokenCounter` turns a request body into the input tokens to reserve.
The default, :class:`LocalEstimate`, counts offline:

    input_tokens = ceil(chars / 4) + 3 per message + 3

where ``chars`` is the number of characters (code points) of the text content of
every message (and, for Anthropic, the system prompt; for the Responses API, the
instructions and input; for embeddings, every input string). Image, audio and
other non-text parts count nothing. This is at least what OpenAI and Anthropic
charge at admission (a character-based estimate), plus the chat overhead of the
OpenAI cookbook. The output reservation is not counted here: it is the request's
``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` (times ``n``).

:class:`QuotadCounter` asks quotad instead (its CountTokens RPC: the providers'
tokenizers, offline in quotad) and reserves the larger of that count and the
providers' character-based admission estimate (``ceil(chars/4)``), as quotad does
for an Acquire with a prompt; it falls back to the local estimate when quotad
cannot count (unreachable, or an embeddings request). Pass either as
``token_counter=`` to the transports and the LangChain handlers. A counter may also
have ``async acount_input_tokens(api, body)``, which the asyncio transport prefers.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Protocol, runtime_checkable

__all__ = ["TokenCounter", "LocalEstimate", "QuotadCounter", "text_chars"]


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the input tokens of a request body for one API shape: "openai.chat",
    "openai.responses", "openai.embeddings" or "anthropic.messages"."""

    def count_input_tokens(self, api: str, body: Mapping[str, Any]) -> int: ...


def text_chars(content: Any) -> int:
    """Characters of the text in a message content: a string, or a list of parts
    whose "text" (or "input_text"/"output_text" parts' text) counts."""
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        n = 0
        for part in content:
            if isinstance(part, str):
                n += len(part)
            elif isinstance(part, Mapping):
                t = part.get("text")
                if isinstance(t, str):
                    n += len(t)
                elif isinstance(part.get("content"), (str, list)):  # tool_result blocks
                    n += text_chars(part.get("content"))
        return n
    if isinstance(content, Mapping):
        t = content.get("text")
        return len(t) if isinstance(t, str) else 0
    return 0


class LocalEstimate:
    """The documented offline estimate: ceil(chars/4) + 3 per message + 3."""

    per_message = 3
    per_request = 3

    def count_input_tokens(self, api: str, body: Mapping[str, Any]) -> int:
        if api == "openai.embeddings":
            inp = body.get("input")
            items = inp if isinstance(inp, list) else [inp]
            total = 0
            for it in items:
                if isinstance(it, str):
                    total += math.ceil(len(it) / 4)
                elif isinstance(it, list):  # token ids
                    total += len(it)
            return total
        messages: list = []
        chars = 0
        if api == "openai.responses":
            chars += text_chars(body.get("instructions"))
            inp = body.get("input")
            if isinstance(inp, str):
                messages = [{"content": inp}]
            elif isinstance(inp, list):
                messages = [m if isinstance(m, Mapping) else {"content": m} for m in inp]
        else:
            messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
            if api == "anthropic.messages":
                chars += text_chars(body.get("system"))
        for m in messages:
            chars += text_chars(m.get("content"))
        return math.ceil(chars / 4) + self.per_message * len(messages) + self.per_request


class _CharEstimate(LocalEstimate):
    """ceil(chars/4) alone: the providers' admission estimate."""

    per_message = 0
    per_request = 0


_ADMISSION = _CharEstimate()


def _prompt_args(api: str, body: Mapping[str, Any]) -> Any:
    """(messages, text) of a request body for CountTokens, or None."""
    if api == "openai.chat":
        return [m for m in body.get("messages") or [] if isinstance(m, Mapping)], None
    if api == "anthropic.messages":
        msgs = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
        system = body.get("system")
        if system:
            msgs = [{"role": "system", "content": system}] + msgs
        return msgs, None
    if api == "openai.responses":
        inp = body.get("input")
        msgs = []
        if body.get("instructions"):
            msgs.append({"role": "system", "content": body["instructions"]})
        if isinstance(inp, str):
            msgs.append({"role": "user", "content": inp})
        elif isinstance(inp, list):
            msgs += [m for m in inp if isinstance(m, Mapping)]
        return msgs, None
    return None


class QuotadCounter:
    """Counts input tokens with quotad's CountTokens RPC. ``client`` is a
    :class:`quotad.Client` (sync and async use) or a :class:`quotad.AsyncClient`
    (async use only). Falls back to ``fallback`` (default :class:`LocalEstimate`)
    when quotad cannot count."""

    def __init__(self, client: Any, fallback: Optional[TokenCounter] = None) -> None:
        self.client = client
        self.fallback = fallback or LocalEstimate()

    def count_input_tokens(self, api: str, body: Mapping[str, Any]) -> int:
        from ._errors import QuotadError

        args = _prompt_args(api, body)
        model = str(body.get("model") or "")
        if args is None or not model or _is_async(self.client):
            return self.fallback.count_input_tokens(api, body)
        try:
            n = self.client.count_tokens(model, messages=args[0], text=args[1])
        except QuotadError:
            return self.fallback.count_input_tokens(api, body)
        return max(n, _ADMISSION.count_input_tokens(api, body))

    async def acount_input_tokens(self, api: str, body: Mapping[str, Any]) -> int:
        import asyncio

        from ._errors import QuotadError

        if not _is_async(self.client):
            return await asyncio.to_thread(self.count_input_tokens, api, body)
        args = _prompt_args(api, body)
        model = str(body.get("model") or "")
        if args is None or not model:
            return self.fallback.count_input_tokens(api, body)
        try:
            n = await self.client.count_tokens(model, messages=args[0], text=args[1])
        except QuotadError:
            return self.fallback.count_input_tokens(api, body)
        return max(n, _ADMISSION.count_input_tokens(api, body))


def _is_async(client: Any) -> bool:
    from ._aio import AsyncClient

    return isinstance(client, AsyncClient)


class Fixed:
    """A counter that answers one precomputed count (internal)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def count_input_tokens(self, api: str, body: Mapping[str, Any]) -> int:
        return self.n
