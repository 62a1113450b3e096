package driver

import (
	"context"
	"fmt"
	"time"

	quotad "github.com/quotad/quotad/clients/go"
)

// reportTimeout bounds one Report.
const reportTimeout = 10 * time.Second

// quotadCaller makes calls through quotad: Acquire the estimate, call, Report.
type quotadCaller struct {
	client     *quotad.Client
	pool       string
	tenant     string
	maxRetries int
	headers    bool // report the provider's headers on success too
	p          *provider
}

// call Acquires c's estimate (1 request, the simulator's prompt estimate and
// max_tokens), calls the provider, and Reports the usage from the response
// body (with the provider's headers when q.headers), or the 429 with its
// retry-after and headers (quotad then pauses the pool) before trying again,
// up to maxRetries times.
func (q *quotadCaller) call(ctx context.Context, c Call, rec *Record) {
	cost := quotad.Cost{Requests: 1, InputTokens: c.InputTokens(), OutputTokens: c.MaxTokens}
	for n := 0; ; n++ {
		start := time.Now()
		g, err := q.client.Acquire(ctx, q.pool, cost, quotad.WithTenant(q.tenant))
		if err != nil {
			rec.Err = fmt.Sprintf("acquire: %v", err)
			return
		}
		sent := time.Now()
		rec.Attempts++
		resp, err := q.p.send(ctx, c)
		if err != nil {
			rec.Err = err.Error()
			q.report(ctx, g, quotad.Usage{}, rec, quotad.OutcomeFailed)
			return
		}
		if resp.status == 200 {
			rec.OK, rec.Sent = true, sent.UnixNano()
			rec.AcquireRTT, rec.Waited = int64(sent.Sub(start)), int64(g.Waited)
			rec.InputTokens, rec.OutputTokens = resp.inputTokens, resp.outputTokens
			opts := []quotad.ReportOption{quotad.OutcomeSuccess}
			if q.headers {
				opts = append(opts, quotad.WithHeaders(resp.header))
			}
			q.report(ctx, g, quotad.Usage{InputTokens: resp.inputTokens, OutputTokens: resp.outputTokens}, rec, opts...)
			return
		}
		if !resp.rateLimited() {
			rec.Err = fmt.Sprintf("provider answered HTTP %d", resp.status)
			q.report(ctx, g, quotad.Usage{}, rec, quotad.OutcomeFailed)
			return
		}
		rec.refused(resp)
		ra, _ := retryAfter(resp.header)
		q.report(ctx, g, quotad.Usage{}, rec, quotad.OutcomeRateLimited, quotad.WithRetryAfter(ra), quotad.WithHeaders(resp.header))
		if n >= q.maxRetries {
			rec.Err = fmt.Sprintf("still rate limited after %d retries", q.maxRetries)
			return
		}
	}
}

// report Reports g, noting the round trip (of the last Report) and any error in rec.
func (q *quotadCaller) report(ctx context.Context, g *quotad.Grant, u quotad.Usage, rec *Record, opts ...quotad.ReportOption) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	start := time.Now()
	err := g.Report(ctx, u, opts...)
	rec.ReportRTT = int64(time.Since(start))
	if err != nil {
		if rec.Err != "" {
			rec.Err += "; "
		}
		rec.Err += "report: " + err.Error()
	}
}
