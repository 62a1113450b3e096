"""quotad: fleet-wide rate limits for LLM provider quotas.

    import quotad
    qc = quotad.Client(["10.0.0.1:7070", "10.0.0.2:7070"])
    with qc.grant("openai/prod/gpt-4o-mini", input_tokens=1200, output_tokens=512) as g:
        resp = call_the_provider()
        g.set_usage(resp.usage.prompt_tokens, resp.usage.completion_tokens)

``quotad.AsyncClient`` is the same for asyncio. ``quotad.httpx`` wraps the httpx
transport of the openai and anthropic SDKs (no call site changes), and
``quotad.langchain`` plugs into LangChain.
"""

from ._aio import AsyncClient, AsyncGrant
from ._client import Client, Grant
from ._errors import (
    ClientClosed,
    ConcurrencyLimitUnsupported,
    CostTooLarge,
    DeadlineExceeded,
    Fenced,
    GrantNotFound,
    InvalidArgument,
    NoOwner,
    NotGranted,
    NotOwner,
    NotSent,
    PoolNotFound,
    PoolRemoved,
    QueueFull,
    QuotadError,
    QuotaExhausted,
    RequestIdReused,
    RequestTooLarge,
    ShuttingDown,
    Unavailable,
)
from ._types import Cost, LimitInfo, Outcome, PoolInfo

__all__ = [
    "AsyncClient",
    "AsyncGrant",
    "Client",
    "ClientClosed",
    "ConcurrencyLimitUnsupported",
    "Cost",
    "CostTooLarge",
    "DeadlineExceeded",
    "Fenced",
    "Grant",
    "GrantNotFound",
    "InvalidArgument",
    "LimitInfo",
    "NoOwner",
    "NotGranted",
    "NotOwner",
    "NotSent",
    "Outcome",
    "PoolInfo",
    "PoolNotFound",
    "PoolRemoved",
    "QueueFull",
    "QuotaExhausted",
    "QuotadError",
    "RequestIdReused",
    "RequestTooLarge",
    "ShuttingDown",
    "Unavailable",
]
__version__ = "0.1.0"
