import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCESS: _ClassVar[Outcome]
    OUTCOME_NOT_SENT: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_RATE_LIMITED: _ClassVar[Outcome]

class Settlement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SETTLEMENT_UNSPECIFIED: _ClassVar[Settlement]
    SETTLEMENT_SETTLED: _ClassVar[Settlement]
    SETTLEMENT_LATE: _ClassVar[Settlement]
    SETTLEMENT_DUPLICATE: _ClassVar[Settlement]
    SETTLEMENT_UNKNOWN_GRANT: _ClassVar[Settlement]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCESS: Outcome
OUTCOME_NOT_SENT: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_RATE_LIMITED: Outcome
SETTLEMENT_UNSPECIFIED: Settlement
SETTLEMENT_SETTLED: Settlement
SETTLEMENT_LATE: Settlement
SETTLEMENT_DUPLICATE: Settlement
SETTLEMENT_UNKNOWN_GRANT: Settlement

class Cost(_message.Message):
    __slots__ = ("requests", "input_tokens", "output_tokens")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    input_tokens: int
    output_tokens: int
    def __init__(self, requests: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_creation_input_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "content", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    name: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("text", "messages")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ...) -> None: ...

class AcquireRequest(_message.Message):
    __slots__ = ("pool", "tenant", "cost", "max_wait", "request_id", "prompt", "model", "max_output_tokens", "n")
    POOL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    pool: str
    tenant: str
    cost: Cost
    max_wait: _duration_pb2.Duration
    request_id: str
    prompt: Prompt
    model: str
    max_output_tokens: int
    n: int
    def __init__(self, pool: _Optional[str] = ..., tenant: _Optional[str] = ..., cost: _Optional[_Union[Cost, _Mapping]] = ..., max_wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., model: _Optional[str] = ..., max_output_tokens: _Optional[int] = ..., n: _Optional[int] = ...) -> None: ...

class AcquireResponse(_message.Message):
    __slots__ = ("granted", "grant_id", "cost", "waited", "lease_ttl", "sequence", "retry_after", "shadow", "shadow_wait")
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    WAITED_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    SHADOW_WAIT_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    grant_id: str
    cost: Cost
    waited: _duration_pb2.Duration
    lease_ttl: _duration_pb2.Duration
    sequence: int
    retry_after: _duration_pb2.Duration
    shadow: bool
    shadow_wait: _duration_pb2.Duration
    def __init__(self, granted: _Optional[bool] = ..., grant_id: _Optional[str] = ..., cost: _Optional[_Union[Cost, _Mapping]] = ..., waited: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., sequence: _Optional[int] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., shadow: _Optional[bool] = ..., shadow_wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("grant_id", "pool", "usage", "outcome", "retry_after", "headers", "provider_error")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ERROR_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    pool: str
    usage: Usage
    outcome: Outcome
    retry_after: _duration_pb2.Duration
    headers: _containers.ScalarMap[str, str]
    provider_error: str
    def __init__(self, grant_id: _Optional[str] = ..., pool: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., headers: _Optional[_Mapping[str, str]] = ..., provider_error: _Optional[str] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("settlement", "charged")
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    settlement: Settlement
    charged: Cost
    def __init__(self, settlement: _Optional[_Union[Settlement, str]] = ..., charged: _Optional[_Union[Cost, _Mapping]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("grant_id", "pool")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    pool: str
    def __init__(self, grant_id: _Optional[str] = ..., pool: _Optional[str] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("lease_ttl",)
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    lease_ttl: _duration_pb2.Duration
    def __init__(self, lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CountTokensRequest(_message.Message):
    __slots__ = ("model", "prompt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: Prompt
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ...) -> None: ...

class CountTokensResponse(_message.Message):
    __slots__ = ("tokens", "encoding", "estimated")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    tokens: int
    encoding: str
    estimated: bool
    def __init__(self, tokens: _Optional[int] = ..., encoding: _Optional[str] = ..., estimated: _Optional[bool] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: str
    def __init__(self, pool: _Optional[str] = ...) -> None: ...

class LimitStatus(_message.Message):
    __slots__ = ("resource", "period", "amount", "capacity", "level", "debt", "provider_limit", "provider_limit_for")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    DEBT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_LIMIT_FOR_FIELD_NUMBER: _ClassVar[int]
    resource: str
    period: _duration_pb2.Duration
    amount: int
    capacity: int
    level: int
    debt: int
    provider_limit: int
    provider_limit_for: _duration_pb2.Duration
    def __init__(self, resource: _Optional[str] = ..., period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., amount: _Optional[int] = ..., capacity: _Optional[int] = ..., level: _Optional[int] = ..., debt: _Optional[int] = ..., provider_limit: _Optional[int] = ..., provider_limit_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TenantStatus(_message.Message):
    __slots__ = ("tenant", "weight", "waiters", "queued", "granted")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    weight: int
    waiters: int
    queued: Cost
    granted: int
    def __init__(self, tenant: _Optional[str] = ..., weight: _Optional[int] = ..., waiters: _Optional[int] = ..., queued: _Optional[_Union[Cost, _Mapping]] = ..., granted: _Optional[int] = ...) -> None: ...

class PoolStatus(_message.Message):
    __slots__ = ("pool", "limits", "concurrent_limit", "in_flight", "waiters", "tenants", "unsettled", "tombstones", "paused_for", "shadow", "shadow_wait_total", "shadow_delayed", "next_sequence", "lease_ttl", "provider", "quota_exhausted", "quota_exhausted_for", "config_error", "unreported_leases")
    POOL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    UNSETTLED_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FOR_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    SHADOW_WAIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DELAYED_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    QUOTA_EXHAUSTED_FIELD_NUMBER: _ClassVar[int]
    QUOTA_EXHAUSTED_FOR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ERROR_FIELD_NUMBER: _ClassVar[int]
    UNREPORTED_LEASES_FIELD_NUMBER: _ClassVar[int]
    pool: str
    limits: _containers.RepeatedCompositeFieldContainer[LimitStatus]
    concurrent_limit: int
    in_flight: int
    waiters: int
    tenants: _containers.RepeatedCompositeFieldContainer[TenantStatus]
    unsettled: Cost
    tombstones: int
    paused_for: _duration_pb2.Duration
    shadow: bool
    shadow_wait_total: _duration_pb2.Duration
    shadow_delayed: int
    next_sequence: int
    lease_ttl: _duration_pb2.Duration
    provider: str
    quota_exhausted: str
    quota_exhausted_for: _duration_pb2.Duration
    config_error: str
    unreported_leases: int
    def __init__(self, pool: _Optional[str] = ..., limits: _Optional[_Iterable[_Union[LimitStatus, _Mapping]]] = ..., concurrent_limit: _Optional[int] = ..., in_flight: _Optional[int] = ..., waiters: _Optional[int] = ..., tenants: _Optional[_Iterable[_Union[TenantStatus, _Mapping]]] = ..., unsettled: _Optional[_Union[Cost, _Mapping]] = ..., tombstones: _Optional[int] = ..., paused_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., shadow: _Optional[bool] = ..., shadow_wait_total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., shadow_delayed: _Optional[int] = ..., next_sequence: _Optional[int] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., provider: _Optional[str] = ..., quota_exhausted: _Optional[str] = ..., quota_exhausted_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., config_error: _Optional[str] = ..., unreported_leases: _Optional[int] = ...) -> None: ...
