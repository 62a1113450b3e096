package quotad

import (
	"context"
	"errors"
	"time"
)

// reportTimeout bounds the Report that Do sends after fn returns. It runs even
// when ctx was canceled meanwhile, so that the grant is settled.
const reportTimeout = 10 * time.Second

// Do acquires cost in pool, runs fn, and reports what fn returned:
//
//   - nil error: OutcomeSuccess with the usage;
//   - an error wrapping ErrNotSent: OutcomeNotSent (the whole cost is refunded);
//   - an error wrapping a *RateLimitedError: OutcomeRateLimited with its
//     retry-after and headers, and the usage;
//   - any other error, or a panic (which Do re-raises): OutcomeFailed with the
//     usage.
//
// Do returns Acquire's error if the grant was not made, else fn's error if any,
// else the error of the Report.
func (c *Client) Do(ctx context.Context, pool string, cost Cost, fn func(ctx context.Context) (Usage, error), opts ...AcquireOption) error {
	g, err := c.Acquire(ctx, pool, cost, opts...)
	if err != nil {
		return err
	}
	var (
		usage    Usage
		fnErr    error
		finished bool
	)
	report := func(opts ...ReportOption) error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		defer cancel()
		return g.Report(rctx, usage, opts...)
	}
	defer func() {
		if !finished { // fn panicked
			_ = report(OutcomeFailed)
		}
	}()
	usage, fnErr = fn(ctx)
	finished = true

	var reportOpts []ReportOption
	var rl *RateLimitedError
	switch {
	case fnErr == nil:
		reportOpts = append(reportOpts, OutcomeSuccess)
	case errors.Is(fnErr, ErrNotSent):
		reportOpts = append(reportOpts, OutcomeNotSent)
	case errors.As(fnErr, &rl):
		reportOpts = append(reportOpts, OutcomeRateLimited, WithRetryAfter(rl.RetryAfter))
		if rl.Headers != nil {
			reportOpts = append(reportOpts, WithHeaders(rl.Headers))
		}
	default:
		reportOpts = append(reportOpts, OutcomeFailed)
	}
	reportErr := report(reportOpts...)
	if fnErr != nil {
		return fnErr
	}
	return reportErr
}
