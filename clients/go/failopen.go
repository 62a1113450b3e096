package quotad

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// localLimiter is the fail-open limiter: a token bucket of requests that refills
// at rate per second up to burst. Callers that must wait reserve their tokens
// first (the level goes negative), so they are served in order.
type localLimiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// newLocalLimiter returns a limiter that starts full: it is used when quotad is
// down, and the local rate is the caller's own share.
func newLocalLimiter(rate float64, burst int) *localLimiter {
	return &localLimiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// reserve takes n tokens and returns how long the caller must wait until they
// are its own. If that is longer than maxWait (when limited), it takes nothing
// and returns the wait with ok false.
func (l *localLimiter) reserve(n float64, maxWait time.Duration, limited bool) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens >= n {
		l.tokens -= n
		return 0, true
	}
	wait = time.Duration((n - l.tokens) / l.rate * float64(time.Second))
	if limited && wait > maxWait {
		return wait, false
	}
	l.tokens -= n
	return wait, true
}

// giveBack returns n tokens reserved by a caller that stopped waiting.
func (l *localLimiter) giveBack(n float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = min(l.burst, l.tokens+n)
}

// acquireLocal grants cost from the fail-open limiter, honouring what remains of
// the Acquire's max wait (it started at start).
func (c *Client) acquireLocal(ctx context.Context, pool string, cost Cost, ac acquireConfig, start time.Time) (*Grant, error) {
	n := max(cost.Requests, 1)
	if float64(n) > c.local.burst {
		return nil, fmt.Errorf("%w: acquire %q (fail-open): %d requests exceed the local burst %v", ErrCostTooLarge, pool, n, c.local.burst)
	}
	wait, ok := c.local.reserve(float64(n), ac.maxWait-time.Since(start), ac.hasWait)
	if !ok {
		return nil, &NotGrantedError{Pool: pool, RetryAfter: wait}
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			c.local.giveBack(float64(n))
			return nil, fmt.Errorf("quotad: acquire %q (fail-open): %w", pool, ctx.Err())
		case <-t.C:
		}
	}
	return &Grant{
		ID:     "local-" + ac.requestID,
		Pool:   pool,
		Cost:   Cost{Requests: n, InputTokens: cost.InputTokens, OutputTokens: cost.OutputTokens},
		Waited: time.Since(start),
		Local:  true,
		c:      c,
	}, nil
}
