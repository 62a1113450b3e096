package server

import (
	"time"

	"github.com/quotad/quotad/config"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/provider"
)

// providerFeedback reads what a Report says of the provider, by the pool's style:
// its rate-limit headers (clamp and learned limits) and a spent quota (fail
// fast), for the engine to apply with the settlement, and the pause a 429 asks
// for.
func (s *Server) providerFeedback(p config.Pool, r *quotadv1.ReportRequest) (limiter.Feedback, time.Duration) {
	style := p.Style()
	fb := provider.ParseHeaders(style, r.GetHeaders(), time.Now())
	if len(fb.Ignored) > 0 {
		s.log.Debug("provider headers ignored", "pool", p.Name, "headers", fb.Ignored)
	}
	retryAfter := r.GetRetryAfter().AsDuration()
	if retryAfter == 0 {
		retryAfter = fb.RetryAfter
	}
	rateLimited := r.GetOutcome() == quotadv1.Outcome_OUTCOME_RATE_LIMITED
	out := limiter.Feedback{Views: fb.Views()}
	if reason, spent := style.QuotaSpent(provider.Outcome{ProviderError: r.GetProviderError(), RateLimited: rateLimited, RetryAfter: retryAfter}); spent {
		out.Exhausted, out.ExhaustedFor = reason, time.Duration(*p.QuotaExhaustedFor)
	}
	if !rateLimited {
		return out, 0
	}
	return out, retryAfter
}
