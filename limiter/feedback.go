package limiter

import (
	"fmt"
	"time"
)

// The provider tells, in every response, how much of its limit is left. The pool
// listens: it never believes it has more than the provider says, and while the
// provider's limit is lower than the configured one, the provider's is in force.

// ProviderView is what the provider said about one resource in the response to a
// grant's call.
type ProviderView struct {
	Resource Resource
	// Limit is the provider's limit; 0 when not reported.
	Limit int64
	// Remaining is what the provider says is left; negative when not reported.
	Remaining int64
	// Slack is how far Remaining may be below the truth through rounding.
	Slack int64
}

// ProviderLimitTTL is how long a provider's lower limit stays in force after the
// last response that confirmed it.
const ProviderLimitTTL = 10 * time.Minute

// feedbackPeriod: provider headers describe per-minute limits, so they bear on the
// pool's limits of a minute or less, never on hourly or daily buckets.
const feedbackPeriod = time.Minute

// Observe applies what the provider said in its response to grant seq's call:
// every limit of a viewed resource (periods up to a minute) is clamped down to
// what the provider says remains, less what the pool granted after seq (the
// provider has not seen those yet) and less the share the pool's headroom holds
// back; a limit the provider reports lower than the configured one takes the
// provider's value for ProviderLimitTTL. A level is never raised. Views of an
// unknown grant are used for the limit only.
func (p *Pool) Observe(now int64, seq uint64, views []ProviderView) {
	p.tick(now)
	defer p.serve(now)
	l := p.leases[seq]
	lowered := false
	defer func() {
		if lowered {
			p.refit()
		}
	}()
	for _, v := range views {
		for i := range p.buckets {
			lim := p.cfg.Limits[i]
			if lim.Resource != v.Resource || lim.Period > feedbackPeriod {
				continue
			}
			b := &p.buckets[i]
			if v.Limit > 0 {
				lowered = p.followProviderLimit(now, b, v.Limit) || lowered
			}
			if v.Remaining >= 0 && l != nil {
				// Since the call's admission the pool granted more, which the provider
				// has not counted yet, and settled refunds it has not seen either.
				after := p.granted.units(v.Resource) - l.grantedAfter.units(v.Resource) -
					(p.refunded.units(v.Resource) - l.refundedAtGrant.units(v.Resource))
				reserve := max(v.Limit-b.configured.amount, 0)
				clampLevel(l.grantedAt, b, v.Remaining+v.Slack-reserve-after)
			}
		}
	}
}

// clampLevel lowers b's level to at most target units (which may be negative) as of
// the instant at: the provider's remaining describes the call's admission, about
// when it was granted, so the refill since then is kept.
func clampLevel(at int64, b *bucket, target int64) {
	var full int64
	if target >= 0 {
		full = at + b.rate.capNs - b.rate.nsFor(min(target, b.rate.capacity))
	} else {
		full = at + b.rate.capNs + b.rate.nsFor(-target)
	}
	b.full = max(b.full, min(full, never))
}

// followProviderLimit puts the provider's limit in force while it is below the
// configured amount, keeping the bucket's fill fraction. It reports whether the
// rate in force changed.
func (p *Pool) followProviderLimit(now int64, b *bucket, limit int64) bool {
	if limit >= b.configured.amount {
		return false
	}
	r := b.configured
	r.amount = limit
	r.capacity = min(r.capacity, limit)
	r.perUnit = 0
	if r.period%r.amount == 0 {
		r.perUnit = r.period / r.amount
	}
	r.capNs = r.nsFor(r.capacity)
	changed := r != b.rate
	if changed {
		b.setRate(now, r)
	}
	b.providerUntil = now + int64(ProviderLimitTTL)
	return changed
}

// expireProviderLimits restores configured limits no response has confirmed lately.
func (p *Pool) expireProviderLimits(now int64) {
	for i := range p.buckets {
		b := &p.buckets[i]
		if b.providerUntil != 0 && now >= b.providerUntil {
			b.setRate(now, b.configured)
			b.providerUntil = 0
		}
	}
}

// ExhaustQuota makes the pool fail fast for d: the provider said the key's quota is
// spent (a spend limit, insufficient_quota), so waiting would not help. Waiters
// fail at once; new Acquires fail until d passes or the config changes.
func (p *Pool) ExhaustQuota(now int64, reason string, d time.Duration) {
	p.tick(now)
	p.exhausted, p.exhaustedUntil = reason, now+int64(d)
	p.Drain(p.exhaustedErr(now))
}

func (p *Pool) exhaustedErr(now int64) error {
	if now >= p.exhaustedUntil {
		p.exhausted, p.exhaustedUntil = "", 0
		return nil
	}
	return fmt.Errorf("%w: %s (for %v more, or until the pool's config changes)",
		ErrQuotaExhausted, p.exhausted, time.Duration(p.exhaustedUntil-now).Round(time.Second))
}

// Feedback is what a Report says of the provider, beyond the call's own outcome.
type Feedback struct {
	// Views are the provider's rate-limit headers; see Observe.
	Views []ProviderView
	// Exhausted, when not empty, says why the key's quota is spent: the pool fails
	// fast for ExhaustedFor; see ExhaustQuota.
	Exhausted    string
	ExhaustedFor time.Duration
}

// ReportWithFeedback is Report, with what the provider said applied first (it
// describes the call as admitted, before its estimate settles). A Report refused
// as invalid, or a second Report of a grant, applies none of it.
func (p *Pool) ReportWithFeedback(now int64, seq uint64, u Usage, outcome Outcome, retryAfter time.Duration, fb Feedback) (ReportResult, error) {
	p.tick(now)
	if err := p.checkUsage(u); err != nil {
		p.serve(now)
		return ReportResult{}, err
	}
	if l := p.leases[seq]; l == nil || l.state != leaseReported {
		if len(fb.Views) > 0 {
			p.Observe(now, seq, fb.Views)
		}
		if fb.Exhausted != "" {
			p.ExhaustQuota(now, fb.Exhausted, fb.ExhaustedFor)
		}
	}
	return p.Report(now, seq, u, outcome, retryAfter)
}
