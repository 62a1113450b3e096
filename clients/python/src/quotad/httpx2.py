"""The transports of :mod:`quotad.httpx` for httpx2 clients (``httpx2.Client``,
``httpx2.AsyncClient``), which openai>=3 and anthropic>=2 use by default."""

from __future__ import annotations

import httpx2 as _hx

from ._httpx_impl import build as _build
from ._transport import RequestInfo

QuotadTransport, AsyncQuotadTransport = _build(_hx)

__all__ = ["QuotadTransport", "AsyncQuotadTransport", "RequestInfo"]

for _c in (QuotadTransport, AsyncQuotadTransport):
    _c.__module__, _c.__qualname__ = __name__, _c.__name__
