// Package feedback reads what a provider says about its rate limits in its
// response headers: OpenAI's x-ratelimit-*, Azure's variant of them, and
// Anthropic's anthropic-ratelimit-*, plus retry-after hints. It is pure: headers
// in, observations out. Garbage is ignored (each ignored header is named in the
// result's Ignored list), never fatal, and never raises a limit: a value is either
// understood or dropped.
package feedback

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Style is a provider's header dialect.
type Style string

// Styles.
const (
	OpenAI    Style = "openai"
	Azure     Style = "azure"
	Anthropic Style = "anthropic"
	Generic   Style = "generic" // read OpenAI's and Anthropic's names, whichever are present
)

// maxValue bounds any limit or remaining a provider can sensibly report.
const maxValue = 1_000_000_000_000_000

// anthropicSlack: Anthropic rounds token remaining to the nearest thousand.
const anthropicSlack = 500

// Observation is what the provider said about one resource's limit.
type Observation struct {
	// Resource is "requests", "tokens", "input_tokens" or "output_tokens".
	Resource string
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

// Feedback is everything the headers said.
type Feedback struct {
	Observations []Observation
	// RetryAfter is the provider's retry hint (retry-after-ms, then retry-after);
	// 0 when absent.
	RetryAfter time.Duration
	// Ignored names headers that were present but not understood.
	Ignored []string
}

// Parse reads headers (names in any case) in the given style. now is the local
// time the response arrived; Anthropic's reset times are read against the
// response's Date header when there is one, so clocks need not agree.
func Parse(style Style, headers map[string]string, now time.Time) Feedback {
	h := make(map[string]string, len(headers))
	for k, v := range headers {
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	var f Feedback
	f.RetryAfter = retryAfter(h, now, &f)
	switch style {
	case OpenAI:
		f.readOpenAI(h, parseGoDuration)
	case Azure:
		f.readOpenAI(h, parseSecondsOrGoDuration)
	case Anthropic:
		f.readAnthropic(h, now)
	default:
		f.readOpenAI(h, parseSecondsOrGoDuration)
		f.readAnthropic(h, now)
	}
	return f
}

// readOpenAI reads x-ratelimit-{limit,remaining,reset}-{requests,tokens}.
func (f *Feedback) readOpenAI(h map[string]string, reset func(string) (time.Duration, bool)) {
	for _, r := range []struct{ suffix, resource string }{{"requests", "requests"}, {"tokens", "tokens"}} {
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

// readAnthropic reads anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-*.
// The combined tokens-* headers repeat the most restrictive of the others, so they
// are used only when neither input nor output is reported.
func (f *Feedback) readAnthropic(h map[string]string, now time.Time) {
	date := now
	if v, ok := h["date"]; ok {
		if t, err := http.ParseTime(v); err == nil {
			date = t
		}
	}
	split := false
	for _, r := range []struct{ name, resource string }{
		{"requests", "requests"}, {"input-tokens", "input_tokens"}, {"output-tokens", "output_tokens"}, {"tokens", "tokens"},
	} {
		if r.name == "tokens" && split {
			continue
		}
		prefix := "anthropic-ratelimit-" + r.name + "-"
		o := Observation{Resource: r.resource, Remaining: -1, Reset: -1}
		if r.name != "requests" {
			o.Slack = anthropicSlack
		}
		found := false
		if v, ok := h[prefix+"limit"]; ok {
			found = f.count(prefix+"limit", v, &o.Limit) || found
		}
		if v, ok := h[prefix+"remaining"]; ok {
			found = f.count(prefix+"remaining", v, &o.Remaining) || found
		}
		if v, ok := h[prefix+"reset"]; ok {
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				o.Reset, found = max(t.Sub(date), 0), true
			} else {
				f.Ignored = append(f.Ignored, prefix+"reset")
			}
		}
		if found {
			f.Observations = append(f.Observations, o)
			split = split || r.name == "input-tokens" || r.name == "output-tokens"
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
func retryAfter(h map[string]string, now time.Time, f *Feedback) time.Duration {
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

// parseGoDuration reads OpenAI's resets: Go durations such as "1s", "6m0s", "12ms".
func parseGoDuration(v string) (time.Duration, bool) {
	d, err := time.ParseDuration(v)
	return d, err == nil && d >= 0
}

// parseSecondsOrGoDuration reads Azure's resets (plain seconds, "10") or OpenAI's.
func parseSecondsOrGoDuration(v string) (time.Duration, bool) {
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s >= 0 && s <= math.MaxInt64/float64(time.Second)) { // NaN fails too
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	return parseGoDuration(v)
}
