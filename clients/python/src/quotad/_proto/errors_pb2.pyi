from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    INVALID_REQUEST: _ClassVar[ErrorReason]
    REQUEST_ID_REUSED: _ClassVar[ErrorReason]
    POOL_NOT_FOUND: _ClassVar[ErrorReason]
    POOL_REMOVED: _ClassVar[ErrorReason]
    GRANT_NOT_FOUND: _ClassVar[ErrorReason]
    COST_TOO_LARGE: _ClassVar[ErrorReason]
    QUOTA_EXHAUSTED: _ClassVar[ErrorReason]
    QUEUE_FULL: _ClassVar[ErrorReason]
    REQUEST_TOO_LARGE: _ClassVar[ErrorReason]
    SHUTTING_DOWN: _ClassVar[ErrorReason]
    FENCED: _ClassVar[ErrorReason]
    NO_OWNER: _ClassVar[ErrorReason]
    NOT_OWNER: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
INVALID_REQUEST: ErrorReason
REQUEST_ID_REUSED: ErrorReason
POOL_NOT_FOUND: ErrorReason
POOL_REMOVED: ErrorReason
GRANT_NOT_FOUND: ErrorReason
COST_TOO_LARGE: ErrorReason
QUOTA_EXHAUSTED: ErrorReason
QUEUE_FULL: ErrorReason
REQUEST_TOO_LARGE: ErrorReason
SHUTTING_DOWN: ErrorReason
FENCED: ErrorReason
NO_OWNER: ErrorReason
NOT_OWNER: ErrorReason
