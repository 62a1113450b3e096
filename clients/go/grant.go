package quotad

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// minRenewInterval bounds how often a lease is renewed, whatever lease quotad
// announces.
const minRenewInterval = 10 * time.Millisecond

// Grant is a cost granted by quotad. Until it is Reported, the client renews its
// lease in the background, which holds its concurrency slot and its estimate.
// Report every Grant exactly once. Its methods are safe for concurrent use.
type Grant struct {
	// ID identifies the grant to quotad ("local-..." for a local grant).
	ID string
	// Pool is the pool the grant was taken from.
	Pool string
	// Cost is what was charged (requests at least 1).
	Cost Cost
	// Waited is how long the call waited in quotad's queue (or the local limiter).
	Waited time.Duration
	// LeaseTTL is how long the lease lasts without a renewal, as quotad granted it.
	LeaseTTL time.Duration
	// Sequence is the order in which the pool took the call.
	Sequence uint64
	// Shadow is set when the pool is in shadow mode: the grant was made at once.
	Shadow bool
	// ShadowWait is, in shadow mode, the wait the pool would have imposed.
	ShadowWait time.Duration
	// Local is set when quotad could not be reached and the grant came from the
	// fail-open limiter (see WithFailOpen). Reporting it does nothing.
	Local bool

	c *Client

	// stopRenewal ends the renewal goroutine; renewalDone is closed when it has
	// returned. Both are nil for a grant that is not renewed.
	stopRenewal context.CancelFunc
	renewalDone chan struct{}

	mu       sync.Mutex // serializes Reports
	reported bool
}

// Usage is what a provider call actually used, as the provider reports it.
type Usage struct {
	// InputTokens as the provider reports them. For Anthropic, its
	// usage.input_tokens: the tokens after the last cache breakpoint.
	InputTokens  int64
	OutputTokens int64
	// CacheCreationInputTokens is Anthropic's usage.cache_creation_input_tokens:
	// they count toward its input limit.
	CacheCreationInputTokens int64
	// CacheReadInputTokens is Anthropic's usage.cache_read_input_tokens: they
	// count toward the input limit only where the pool says so.
	CacheReadInputTokens int64
}

// Outcome is what happened to the provider call; pass it to Report as an option.
// The default is OutcomeSuccess.
type Outcome int

// The outcomes of a provider call.
const (
	// OutcomeSuccess: the call reached the provider and succeeded.
	OutcomeSuccess Outcome = iota + 1
	// OutcomeNotSent: the call never reached the provider; quotad refunds the
	// whole cost, request included.
	OutcomeNotSent
	// OutcomeFailed: the call reached the provider and failed; it still counts.
	OutcomeFailed
	// OutcomeRateLimited: the provider answered 429; quotad pauses the pool for
	// the retry-after given with WithRetryAfter.
	OutcomeRateLimited
)

func (o Outcome) applyReport(c *reportConfig) { c.outcome = o }

// String returns the outcome in words, such as "rate limited".
func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeNotSent:
		return "not sent"
	case OutcomeFailed:
		return "failed"
	case OutcomeRateLimited:
		return "rate limited"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

func (o Outcome) proto() quotadv1.Outcome {
	switch o {
	case OutcomeNotSent:
		return quotadv1.Outcome_OUTCOME_NOT_SENT
	case OutcomeFailed:
		return quotadv1.Outcome_OUTCOME_FAILED
	case OutcomeRateLimited:
		return quotadv1.Outcome_OUTCOME_RATE_LIMITED
	}
	return quotadv1.Outcome_OUTCOME_SUCCESS
}

// Report settles the grant with the call's actual usage and outcome (by default
// OutcomeSuccess), and stops the lease renewal: no Renew is sent once Report
// starts. It retries on other nodes like Acquire. Once a Report has succeeded,
// later Reports return nil and send nothing; a Report that failed may be called
// again. Reporting a local grant does nothing and returns nil.
//
// If Report fails, the lease runs out within LeaseTTL and quotad keeps the
// estimate as charged; a later successful Report still settles it.
func (g *Grant) Report(ctx context.Context, usage Usage, opts ...ReportOption) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endRenewal()
	if g.reported || g.Local {
		return nil
	}
	if usage.InputTokens < 0 || usage.OutputTokens < 0 || usage.CacheCreationInputTokens < 0 || usage.CacheReadInputTokens < 0 {
		return fmt.Errorf("%w: report %q: negative usage %+v", ErrInvalid, g.Pool, usage)
	}
	if g.c.isClosed() {
		return fmt.Errorf("%w: report %q", ErrClosed, g.Pool)
	}
	rc := reportConfig{outcome: OutcomeSuccess}
	for _, opt := range opts {
		opt.applyReport(&rc)
	}
	req := &quotadv1.ReportRequest{
		GrantId: g.ID,
		Pool:    g.Pool,
		Usage: &quotadv1.Usage{
			InputTokens:              usage.InputTokens,
			OutputTokens:             usage.OutputTokens,
			CacheCreationInputTokens: usage.CacheCreationInputTokens,
			CacheReadInputTokens:     usage.CacheReadInputTokens,
		},
		Outcome:       rc.outcome.proto(),
		Headers:       rc.headers,
		ProviderError: rc.providerError,
	}
	if rc.retryAfter > 0 {
		req.RetryAfter = durationpb.New(rc.retryAfter)
	}
	// A retried Report that quotad already applied is answered
	// SETTLEMENT_DUPLICATE: that is a success too.
	err := g.c.call(ctx, func(ctx context.Context, api quotadv1.QuotaServiceClient) error {
		_, err := api.Report(ctx, req)
		return err
	})
	if err != nil {
		return g.c.wrapErr(ctx, "report", g.Pool, err)
	}
	g.reported = true
	return nil
}

// startRenewal starts the goroutine that renews the lease until Report or Close.
//
// Each grant has its own goroutine: open grants are as many as the provider calls
// in flight, each goroutine sleeps on one timer, and stopping it is a cancel, so
// this is simpler than one scheduler for all grants at no real cost.
func (g *Grant) startRenewal() {
	if g.LeaseTTL <= 0 {
		return
	}
	// Registered under the client's lock, so that Close either waits for this
	// goroutine or prevents it.
	g.c.mu.Lock()
	defer g.c.mu.Unlock()
	if g.c.closed {
		return
	}
	ctx, cancel := context.WithCancel(g.c.ctx)
	g.stopRenewal = cancel
	g.renewalDone = make(chan struct{})
	g.c.wg.Add(1)
	go func() {
		defer g.c.wg.Done()
		defer close(g.renewalDone)
		g.renew(ctx)
	}()
}

// endRenewal stops the renewal and waits until it has returned.
func (g *Grant) endRenewal() {
	if g.stopRenewal == nil {
		return
	}
	g.stopRenewal()
	<-g.renewalDone
}

// renew calls Renew at about a third of the lease, so that two renewals in a row
// can fail before the lease runs out. It stops when ctx ends or when quotad no
// longer knows the grant (NOT_FOUND: the lease already ran out).
func (g *Grant) renew(ctx context.Context) {
	ttl := g.LeaseTTL
	req := &quotadv1.RenewRequest{GrantId: g.ID, Pool: g.Pool}
	t := time.NewTimer(max(ttl/3, minRenewInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		interval := max(ttl/3, minRenewInterval)
		rctx, cancel := context.WithTimeout(ctx, interval)
		var resp *quotadv1.RenewResponse
		err := g.c.call(rctx, func(ctx context.Context, api quotadv1.QuotaServiceClient) error {
			var err error
			resp, err = api.Renew(ctx, req)
			return err
		})
		cancel()
		switch {
		case err == nil:
			if d := resp.GetLeaseTtl().AsDuration(); d > 0 {
				ttl = d
			}
		case status.Code(err) == codes.NotFound:
			return
		}
		// Other failures: the next tick tries again while the lease may still hold.
		t.Reset(max(ttl/3, minRenewInterval))
	}
}
