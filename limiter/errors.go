package limiter

import "errors"

// Errors the engine returns, wrapped with details. The server maps each to a gRPC
// status code; callers test them with errors.Is.
var (
	// ErrPoolNotFound: no pool has that name.
	ErrPoolNotFound = errors.New("pool not found")
	// ErrPoolRemoved: the pool was removed from the configuration while the call waited.
	ErrPoolRemoved = errors.New("pool removed")
	// ErrCostTooLarge: the cost exceeds a bucket's capacity, so it can never be granted.
	ErrCostTooLarge = errors.New("cost exceeds capacity")
	// ErrQueueFull: the pool holds max_waiters already, or its predicted wait exceeds
	// max_queue_wait, or it holds as many open leases as it may.
	ErrQueueFull = errors.New("queue full")
	// ErrRequestIDReused: a request id came back with a different cost or tenant.
	ErrRequestIDReused = errors.New("request id reused with a different request")
	// ErrGrantNotFound: no open lease has that grant id.
	ErrGrantNotFound = errors.New("grant not found")
	// ErrInvalidUsage: usage no bucket of the pool could ever hold.
	ErrInvalidUsage = errors.New("invalid usage")
	// ErrInvalidCost: a negative or absurd cost.
	ErrInvalidCost = errors.New("invalid cost")
	// ErrCancelled: the caller left before the grant.
	ErrCancelled = errors.New("cancelled")
	// ErrQuotaExhausted: the provider said the key's quota is spent.
	ErrQuotaExhausted = errors.New("provider quota exhausted")
	// ErrNotOwner: in a cluster, another node owns the pool now (or this node is
	// taking it over).
	ErrNotOwner = errors.New("this node does not own the pool")
	// ErrFenced: this node owns the pool but may not grant now: it has not heard a
	// majority of the cluster recently enough.
	ErrFenced = errors.New("node fenced: no recent majority")
	// ErrClosed: the limiter is shutting down.
	ErrClosed = errors.New("limiter closed")
)
