package provider

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/quotad/quotad/limiter"
)

// Header parsing is pure: headers in, observations out. Garbage is ignored (each
// ignored header is named in the result's Ignored list), never fatal, and never
// raises a limit: a value is either understood or dropped. Each style reads its
// own dialect (readHeaders); retry hints are read the same way for all.

// maxValue bounds any limit or remaining a provider can sensibly report.
const maxValue = 1_000_000_000_000_000

// Observation is what the provider said about one resource's limit.
type Observation struct {
	Resource limiter.Resource
	// Limit is the provider's limit (0: not reported).
	Limit int64
	// Remaining is what the provider says is left (-1: not reported).
	Remaining int64
	// Slack is how far Remaining may be below the truth through the provider's
	// rounding.
	Slack int64
	// Reset is the time until the limit is whole again (-1: not reported).
	Reset time.Duration
}

// Feedback is everything a response's headers said.
type Feedback struct {
	Observations []Observation
	// RetryAfter is the provider's retry hint (retry-after-ms, then retry-after);
	// 0 when absent.
	RetryAfter time.Duration
	// Ignored names headers that were present but not understood.
	Ignored []string
}

// Views returns the observations as the engine takes them.
func (f Feedback) Views() []limiter.ProviderView {
	out := make([]limiter.ProviderView, 0, len(f.Observations))
	for _, o := range f.Observations {
		out = append(out, limiter.ProviderView{Resource: o.Resource, Limit: o.Limit, Remaining: o.Remaining, Slack: o.Slack})
	}
	return out
}

// ParseHeaders reads a response's headers (names in any case) in style s's
// dialect. now is the local time the response arrived.
func ParseHeaders(s Style, headers map[string]string, now time.Time) Feedback {
	h := make(map[string]string, len(headers))
	for k, v := range headers {
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	var f Feedback
	f.RetryAfter = f.retryAfter(h, now)
	s.readHeaders(h, now, &f)
	return f
}

// readXRateLimit reads OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens},
// resets parsed by reset.
func (f *Feedback) readXRateLimit(h map[string]string, reset func(string) (time.Duration, bool)) {
	for _, r := range []struct {
		suffix   string
		resource limiter.Resource
	}{{"requests", limiter.Requests}, {"tokens", limiter.Tokens}} {
		o := Observation{Resource: r.resource, Remaining: -1, Reset: -1}
		found := false
		if v, ok := h["x-ratelimit-limit-"+r.suffix]; ok {
			found = f.count("x-ratelimit-limit-"+r.suffix, v, &o.Limit) || found
		}
		if v, ok := h["x-ratelimit-remaining-"+r.suffix]; ok {
			found = f.count("x-ratelimit-remaining-"+r.suffix, v, &o.Remaining) || found
		}
		if v, ok := h["x-ratelimit-reset-"+r.suffix]; ok {
			if d, ok := reset(v); ok {
				o.Reset, found = d, true
			} else {
				f.Ignored = append(f.Ignored, "x-ratelimit-reset-"+r.suffix)
			}
		}
		if found {
			f.Observations = append(f.Observations, o)
		}
	}
}

// count parses a non-negative integer count into dst, or notes the header as ignored.
func (f *Feedback) count(name, v string, dst *int64) bool {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxValue {
		f.Ignored = append(f.Ignored, name)
		return false
	}
	*dst = n
	return true
}

// retryAfter reads retry-after-ms (milliseconds), then retry-after (seconds or an
// HTTP date), as the OpenAI SDKs do.
func (f *Feedback) retryAfter(h map[string]string, now time.Time) time.Duration {
	if v, ok := h["retry-after-ms"]; ok {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && ms < float64(24*time.Hour/time.Millisecond) {
			return time.Duration(ms * float64(time.Millisecond))
		}
		f.Ignored = append(f.Ignored, "retry-after-ms")
	}
	v, ok := h["retry-after"]
	if !ok {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < (24*time.Hour).Seconds() {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	f.Ignored = append(f.Ignored, "retry-after")
	return 0
}
