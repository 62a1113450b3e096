package quotad

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Errors returned by the client, to test with errors.Is. An error answered by
// quotad wraps one of them and the gRPC status error, whose message is the
// server's.
var (
	// ErrPoolNotFound: the pool is not configured (gRPC NOT_FOUND on Acquire).
	ErrPoolNotFound = errors.New("quotad: pool not found")
	// ErrCostTooLarge: the cost exceeds what one of the pool's buckets can ever
	// hold, so it can never be granted (gRPC FAILED_PRECONDITION).
	ErrCostTooLarge = errors.New("quotad: cost too large for the pool")
	// ErrQuotaExhausted: the provider said the key's quota is spent (OpenAI's
	// insufficient_quota, a spend limit), and the pool fails fast until its
	// config changes or the pool's quota_exhausted_for passes (gRPC
	// FAILED_PRECONDITION).
	ErrQuotaExhausted = errors.New("quotad: provider quota exhausted")
	// ErrQueueFull: the pool's wait queue is full, or its predicted wait exceeds the
	// pool's max_queue_wait (gRPC RESOURCE_EXHAUSTED).
	ErrQueueFull = errors.New("quotad: queue full")
	// ErrInvalid: the request is invalid, for example a negative cost or absurd
	// usage (gRPC INVALID_ARGUMENT, INVALID_REQUEST); Dial also returns it for bad
	// options.
	ErrInvalid = errors.New("quotad: invalid request")
	// ErrRequestIDReused: a request id came back with another cost or tenant
	// (gRPC INVALID_ARGUMENT, REQUEST_ID_REUSED).
	ErrRequestIDReused = errors.New("quotad: request id reused with a different request")
	// ErrPoolRemoved: the pool was removed from the configuration while the call
	// waited (gRPC NOT_FOUND).
	ErrPoolRemoved = errors.New("quotad: pool removed")
	// ErrGrantNotFound: no open lease or tombstone knows the grant (gRPC
	// NOT_FOUND on Renew).
	ErrGrantNotFound = errors.New("quotad: grant not found")
	// ErrRequestTooLarge: the request is larger than the node accepts (gRPC
	// RESOURCE_EXHAUSTED).
	ErrRequestTooLarge = errors.New("quotad: request too large")
	// ErrUnavailable: no node of quotad could be reached; it wraps the last error
	// from a node.
	ErrUnavailable = errors.New("quotad: no node reachable")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("quotad: client closed")
	// ErrNotSent is for the function given to Do: return an error wrapping it when
	// the provider call was never made, and Do reports OutcomeNotSent, which
	// refunds the whole cost.
	ErrNotSent = errors.New("quotad: call not sent to the provider")
)

// reasonErrors maps quotad's error reasons (errors.proto) to the sentinels
// callers test for. Reasons the client retries on another node (SHUTTING_DOWN,
// FENCED, NO_OWNER: code UNAVAILABLE) end, when no node serves, in ErrUnavailable.
var reasonErrors = map[quotadv1.ErrorReason]error{
	quotadv1.ErrorReason_INVALID_REQUEST:   ErrInvalid,
	quotadv1.ErrorReason_REQUEST_ID_REUSED: ErrRequestIDReused,
	quotadv1.ErrorReason_POOL_NOT_FOUND:    ErrPoolNotFound,
	quotadv1.ErrorReason_POOL_REMOVED:      ErrPoolRemoved,
	quotadv1.ErrorReason_GRANT_NOT_FOUND:   ErrGrantNotFound,
	quotadv1.ErrorReason_COST_TOO_LARGE:    ErrCostTooLarge,
	quotadv1.ErrorReason_QUOTA_EXHAUSTED:   ErrQuotaExhausted,
	quotadv1.ErrorReason_QUEUE_FULL:        ErrQueueFull,
	quotadv1.ErrorReason_REQUEST_TOO_LARGE: ErrRequestTooLarge,
}

// codeErrors are the sentinels of answers that carry no reason, by code: gRPC's
// own refusals of a request before quotad sees it (a message larger than the
// node accepts is RESOURCE_EXHAUSTED without a reason, and is not a full queue).
var codeErrors = map[codes.Code]error{
	codes.InvalidArgument: ErrInvalid,
	codes.NotFound:        ErrPoolNotFound,
}

// Reason returns the error reason quotad gave for err (see errors.proto), or
// ERROR_REASON_UNSPECIFIED when err carries none.
func Reason(err error) quotadv1.ErrorReason {
	var st interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &st) {
		return quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return quotadv1.ReasonOf(st.GRPCStatus().Err())
}

// NotGrantedError is returned by Acquire when quotad predicts a wait longer than
// WithMaxWait allows (or, with a zero max wait, when the cost does not fit now).
type NotGrantedError struct {
	Pool string
	// RetryAfter is when the cost is predicted to fit.
	RetryAfter time.Duration
}

// Error names the pool and the predicted retry-after.
func (e *NotGrantedError) Error() string {
	return fmt.Sprintf("quotad: not granted in pool %q within max wait (retry after %v)", e.Pool, e.RetryAfter)
}

// RateLimitedError is for the function given to Do: return it (or an error
// wrapping it) when the provider answered 429, and Do reports OutcomeRateLimited
// with its retry-after and headers.
type RateLimitedError struct {
	// RetryAfter is the provider's retry-after; zero if it gave none.
	RetryAfter time.Duration
	// Headers are the provider's response headers.
	Headers http.Header
}

// Error says the provider rate limited the call, with its retry-after if any.
func (e *RateLimitedError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("provider rate limited the call (retry after %v)", e.RetryAfter)
	}
	return "provider rate limited the call"
}

// wrapErr puts context on an error of an RPC op ("acquire", "report", "renew") in
// pool: a sentinel for the gRPC codes callers act on, the context's own error when
// ctx ended, and ErrClosed when the client was closed.
func (c *Client) wrapErr(ctx context.Context, op, pool string, err error) error {
	if err == nil {
		return nil
	}
	if c.isClosed() {
		return fmt.Errorf("%w: %s %q: %w", ErrClosed, op, pool, err)
	}
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("quotad: %s %q: %w", op, pool, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("quotad: %s %q: %w", op, pool, ctxErr)
	}
	kind, ok := reasonErrors[quotadv1.ReasonOf(err)]
	if !ok {
		if kind, ok = codeErrors[status.Code(err)]; !ok {
			return fmt.Errorf("quotad: %s %q: %w", op, pool, err)
		}
	}
	return fmt.Errorf("%w: %s %q: %w", kind, op, pool, err)
}
