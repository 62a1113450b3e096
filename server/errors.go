package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// errorTable maps each engine error to its gRPC code and ErrorReason (see
// errors.proto, which says what each reason means to a caller). The first match
// wins; an error in none is INTERNAL.
var errorTable = []struct {
	err    error
	code   codes.Code
	reason quotadv1.ErrorReason
}{
	{limiter.ErrPoolNotFound, codes.NotFound, quotadv1.ErrorReason_POOL_NOT_FOUND},
	{limiter.ErrPoolRemoved, codes.NotFound, quotadv1.ErrorReason_POOL_REMOVED},
	{limiter.ErrGrantNotFound, codes.NotFound, quotadv1.ErrorReason_GRANT_NOT_FOUND},
	{limiter.ErrCostTooLarge, codes.FailedPrecondition, quotadv1.ErrorReason_COST_TOO_LARGE},
	{limiter.ErrQuotaExhausted, codes.FailedPrecondition, quotadv1.ErrorReason_QUOTA_EXHAUSTED},
	{limiter.ErrQueueFull, codes.ResourceExhausted, quotadv1.ErrorReason_QUEUE_FULL},
	{limiter.ErrRequestIDReused, codes.InvalidArgument, quotadv1.ErrorReason_REQUEST_ID_REUSED},
	{limiter.ErrInvalidCost, codes.InvalidArgument, quotadv1.ErrorReason_INVALID_REQUEST},
	{limiter.ErrInvalidUsage, codes.InvalidArgument, quotadv1.ErrorReason_INVALID_REQUEST},
	{limiter.ErrClosed, codes.Unavailable, quotadv1.ErrorReason_SHUTTING_DOWN},
	{limiter.ErrNotOwner, codes.Aborted, quotadv1.ErrorReason_NOT_OWNER},
	{limiter.ErrFenced, codes.Unavailable, quotadv1.ErrorReason_FENCED},
	{context.Canceled, codes.Canceled, quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
	{context.DeadlineExceeded, codes.DeadlineExceeded, quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
}

// toStatus maps an engine error to its status, with its ErrorReason.
func toStatus(err error) error {
	code, reason := classify(err)
	if reason == quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return status.Error(code, err.Error())
	}
	return reason.Error(code, err.Error())
}

// invalid is the status of a request that fails validation.
func invalid(err error) error {
	return quotadv1.ErrorReason_INVALID_REQUEST.Error(codes.InvalidArgument, err.Error())
}

func classify(err error) (codes.Code, quotadv1.ErrorReason) {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code, e.reason
		}
	}
	return codes.Internal, quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// reasonLabel is the metrics label of an error: its reason in lower case
// ("queue_full"), or the code's name for errors without one ("canceled").
func reasonLabel(err error) string {
	code, reason := classify(err)
	if reason == quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return strings.ToLower(code.String())
	}
	return strings.ToLower(reason.String())
}
