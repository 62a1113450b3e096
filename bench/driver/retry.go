package driver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// SDKRetry is the retry policy of the OpenAI SDKs (Python and Go) on a 429: up
// to MaxRetries retries (their default is 2); before retry n (0-based) wait the
// provider's retry-after when it is within (0, 60 s], else
// min(0.5 s × 2^n, 8 s) × (1 − 0.25 × random), as the SDKs compute it.
type SDKRetry struct {
	MaxRetries int
}

// Backoff bounds of the SDKs' own retry delay.
const (
	initialRetryDelay = 500 * time.Millisecond
	maxRetryDelay     = 8 * time.Second
)

// Delay returns how long to wait before retry n after a 429 whose retry-after
// is ra (ok false when the provider gave none usable), jitter in [0, 1).
func (SDKRetry) Delay(n int, ra time.Duration, ok bool, jitter float64) time.Duration {
	if ok {
		return ra
	}
	d := min(initialRetryDelay<<min(n, 16), maxRetryDelay)
	return time.Duration(float64(d) * (1 - 0.25*jitter))
}

// call makes c with this policy, filling in rec. The call has failed when the
// last retry is refused too, or on any other error.
func (s SDKRetry) call(ctx context.Context, p *provider, c Call, rec *Record) {
	for n := 0; ; n++ {
		sent := time.Now().UnixNano()
		rec.Attempts++
		resp, err := p.send(ctx, c)
		switch {
		case err != nil:
			rec.Err = err.Error()
			return
		case resp.status == 200:
			rec.OK, rec.Sent = true, sent
			rec.InputTokens, rec.OutputTokens = resp.inputTokens, resp.outputTokens
			return
		case !resp.rateLimited():
			rec.Err = fmt.Sprintf("provider answered HTTP %d", resp.status)
			return
		}
		rec.refused(resp)
		if n >= s.MaxRetries {
			rec.Err = fmt.Sprintf("still rate limited after %d retries", s.MaxRetries)
			return
		}
		ra, ok := retryAfter(resp.header)
		if err := sleep(ctx, s.Delay(n, ra, ok, rand.Float64())); err != nil {
			rec.Err = err.Error()
			return
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
