package quotad

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	// usage (gRPC INVALID_ARGUMENT); Dial also returns it for bad options.
	ErrInvalid = errors.New("quotad: invalid request")
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

// quotaExhaustedMessage starts the message of quotad's answer to an Acquire in a
// pool whose provider quota is spent.
const quotaExhaustedMessage = "provider quota exhausted"

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
	var kind error
	switch status.Code(err) {
	case codes.NotFound:
		kind = ErrPoolNotFound
	case codes.FailedPrecondition:
		kind = ErrCostTooLarge
		// Both answers share the code; the server's ErrorInfo reason tells them
		// apart (its message too, for servers that send no reason).
		if errorReason(err) == "QUOTA_EXHAUSTED" || strings.Contains(status.Convert(err).Message(), quotaExhaustedMessage) {
			kind = ErrQuotaExhausted
		}
	case codes.ResourceExhausted:
		kind = ErrQueueFull
	case codes.InvalidArgument:
		kind = ErrInvalid
	default:
		return fmt.Errorf("quotad: %s %q: %w", op, pool, err)
	}
	return fmt.Errorf("%w: %s %q: %w", kind, op, pool, err)
}

// errorReason returns the ErrorInfo reason of a status error, or "".
func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}
