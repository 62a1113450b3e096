package server

import (
	"time"

	"github.com/quotad/quotad/config"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server/feedback"
	"github.com/quotad/quotad/server/limiter"
)

// quotaErrors are provider error types and codes that mean the key's quota is spent,
// not that it is busy: waiting does not help.
var quotaErrors = map[string]bool{
	"insufficient_quota":                true,
	"credit_balance_exhausted":          true,
	"organization_spend_limit_exceeded": true,
	"project_spend_limit_exceeded":      true,
	"organization_usage_limit_exceeded": true,
	"billing_error":                     true,
}

// providerFeedback reads what a Report says of the provider: its rate-limit
// headers (clamp and learned limits) and a spent quota (fail fast), for the engine
// to apply with the settlement, and the pause a 429 asks for.
func (s *Server) providerFeedback(p config.Pool, r *quotadv1.ReportRequest, retryAfter time.Duration) (limiter.Feedback, time.Duration) {
	var out limiter.Feedback
	fb := feedback.Parse(feedback.Style(p.ProviderStyle()), r.GetHeaders(), time.Now())
	if len(fb.Ignored) > 0 {
		s.log.Debug("provider headers ignored", "pool", p.Name, "headers", fb.Ignored)
	}
	if retryAfter == 0 {
		retryAfter = fb.RetryAfter
	}
	for _, o := range fb.Observations {
		res, err := limiter.ParseResource(o.Resource)
		if err != nil {
			continue
		}
		out.Views = append(out.Views, limiter.ProviderView{Resource: res, Limit: o.Limit, Remaining: o.Remaining, Slack: o.Slack})
	}
	rateLimited := r.GetOutcome() == quotadv1.Outcome_OUTCOME_RATE_LIMITED
	reason := r.GetProviderError()
	spent := quotaErrors[reason] ||
		// Anthropic's spend-limit 429 is the one that carries no retry-after.
		(rateLimited && retryAfter == 0 && p.ProviderStyle() == config.ProviderAnthropic)
	if spent {
		if reason == "" {
			reason = "provider answered 429 without retry-after (spend limit)"
		}
		out.Exhausted, out.ExhaustedFor = "provider quota exhausted: "+reason, time.Duration(*p.QuotaExhaustedFor)
	}
	if !rateLimited {
		return out, 0
	}
	return out, retryAfter
}
