"""The provider-aware parts of the httpx transports, independent of the httpx
flavour (httpx or httpx2): which requests are understood, what they cost, and
where their usage is in the response."""

from __future__ import annotations

import email.utils
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from ._types import Cost
from .tokens import LocalEstimate, TokenCounter, text_chars

#: OpenAI's output cap when a request sets none (the simulator's and a safe bound).
DEFAULT_OUTPUT_TOKENS = 1024


@dataclass
class RequestInfo:
    """An understood provider request."""

    api: str  # "openai.chat", "openai.responses", "openai.embeddings", "anthropic.messages"
    model: str
    stream: bool
    cost: Cost
    #: The input estimate, reported when the response carries no usage.
    input_estimate: int


PoolSelector = Union[str, Callable[[RequestInfo], Optional[str]]]


def classify(method: str, path: str) -> Optional[str]:
    if method.upper() != "POST":
        return None
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai.chat"
    if path.endswith("/responses"):
        return "openai.responses"
    if path.endswith("/embeddings"):
        return "openai.embeddings"
    if path.endswith("/messages"):
        return "anthropic.messages"
    return None


def _int(v: Any) -> Optional[int]:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def request_info(
    api: str, body: bytes, counter: TokenCounter, default_output_tokens: int
) -> Optional[RequestInfo]:
    """The cost of an understood request, or None when its body is not JSON."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    inp = counter.count_input_tokens(api, data)
    if api == "openai.chat":
        cap = _int(data.get("max_completion_tokens"))
        if cap is None:
            cap = _int(data.get("max_tokens"))
        if cap is None:
            cap = default_output_tokens
        out = cap * max(_int(data.get("n")) or 1, 1)
    elif api == "openai.responses":
        cap = _int(data.get("max_output_tokens"))
        out = default_output_tokens if cap is None else cap
    elif api == "anthropic.messages":
        out = _int(data.get("max_tokens")) or 0
    else:
        out = 0
    return RequestInfo(
        api=api,
        model=str(data.get("model") or ""),
        stream=bool(data.get("stream")),
        cost=Cost(1, inp, out),
        input_estimate=inp,
    )


def retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """The provider's retry-after-ms, else retry-after (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                t = email.utils.parsedate_to_datetime(ra)
                return max(0.0, t.timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return None


Usage4 = Tuple[int, int, int, int]


def usage_from_body(api: str, data: Any) -> Optional[Usage4]:
    """(input, output, cache creation, cache read) tokens from a JSON response
    body, or None. For Anthropic, input is its usage.input_tokens (the tokens
    after the last cache breakpoint) and the cache tokens come apart, as quotad's
    Report takes them."""
    if not isinstance(data, dict):
        return None
    u = data.get("usage")
    if api == "openai.responses" and not isinstance(u, dict) and isinstance(data.get("response"), dict):
        u = data["response"].get("usage")
    if not isinstance(u, dict):
        return None
    if api == "anthropic.messages":
        return (_int(u.get("input_tokens")) or 0, _int(u.get("output_tokens")) or 0,
                _int(u.get("cache_creation_input_tokens")) or 0, _int(u.get("cache_read_input_tokens")) or 0)
    if "prompt_tokens" in u:
        return _int(u.get("prompt_tokens")) or 0, _int(u.get("completion_tokens")) or 0, 0, 0
    return _int(u.get("input_tokens")) or 0, _int(u.get("output_tokens")) or 0, 0, 0


class StreamUsage:
    """Reads usage from a server-sent event stream as it passes: OpenAI's final
    usage chunk (stream_options.include_usage), the Responses API's
    response.completed, Anthropic's message_start and message_delta. Without
    usage in the stream, the output is estimated from the streamed text."""

    def __init__(self, info: RequestInfo) -> None:
        self.info = info
        self._buf = b""
        self.input: Optional[int] = None
        self.output: Optional[int] = None
        self.cache_creation = 0
        self.cache_read = 0
        self._text_chars = 0

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > 1 << 20:  # not SSE: stop looking
                    self._buf = b""
                return
            line, self._buf = self._buf[:nl].rstrip(b"\r"), self._buf[nl + 1 :]
            if line.startswith(b"data:"):
                self._event(line[5:].strip())

    def _event(self, payload: bytes) -> None:
        if not payload or payload == b"[DONE]":
            return
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(data, dict):
            return
        t = data.get("type")
        if self.info.api == "anthropic.messages":
            u = None
            if t == "message_start" and isinstance(data.get("message"), dict):
                u = data["message"].get("usage") or {}
            elif t == "message_delta" and isinstance(data.get("usage"), dict):
                u = data["usage"]  # output_tokens is cumulative; newer API versions repeat the input
            if u is not None:
                if _int(u.get("input_tokens")) is not None:
                    self.input = _int(u.get("input_tokens"))
                if _int(u.get("output_tokens")) is not None:
                    self.output = _int(u.get("output_tokens"))
                if _int(u.get("cache_creation_input_tokens")) is not None:
                    self.cache_creation = _int(u.get("cache_creation_input_tokens")) or 0
                if _int(u.get("cache_read_input_tokens")) is not None:
                    self.cache_read = _int(u.get("cache_read_input_tokens")) or 0
            elif t == "content_block_delta" and isinstance(data.get("delta"), dict):
                self._text_chars += text_chars([data["delta"]])
            return
        if self.info.api == "openai.responses":
            if t in ("response.completed", "response.incomplete", "response.failed"):
                u4 = usage_from_body("openai.responses", data)
                if u4:
                    self.input, self.output = u4[0], u4[1]
            elif t == "response.output_text.delta" and isinstance(data.get("delta"), str):
                self._text_chars += len(data["delta"])
            return
        u4 = usage_from_body(self.info.api, data)
        if u4:
            self.input, self.output = u4[0], u4[1]
        for ch in data.get("choices") or []:
            d = ch.get("delta") if isinstance(ch, dict) else None
            if isinstance(d, dict) and isinstance(d.get("content"), str):
                self._text_chars += len(d["content"])

    def usage(self) -> Usage4:
        inp = self.input if self.input is not None else self.info.input_estimate
        out = self.output if self.output is not None else math.ceil(self._text_chars / 4)
        return inp, out, self.cache_creation, self.cache_read

    @property
    def complete(self) -> bool:
        return self.input is not None and self.output is not None
