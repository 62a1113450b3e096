package provider

import (
	"github.com/quotad/quotad/limiter"

	"reflect"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParseHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		style   Name
		headers map[string]string
		want    Feedback
	}{
		{
			name:  "openai",
			style: OpenAI,
			headers: map[string]string{ // a real response's headers
				"X-Ratelimit-Limit-Requests": "60", "x-ratelimit-limit-tokens": "150000",
				"x-ratelimit-remaining-requests": "59", "x-ratelimit-remaining-tokens": "149984",
				"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s",
			},
			want: Feedback{Observations: []Observation{
				{Resource: limiter.Requests, Limit: 60, Remaining: 59, Reset: time.Second},
				{Resource: limiter.Tokens, Limit: 150000, Remaining: 149984, Reset: 6 * time.Minute},
			}},
		},
		{
			name:  "openai 429",
			style: OpenAI,
			headers: map[string]string{
				"x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": "0",
				"x-ratelimit-reset-tokens": "23h47m36.648s", "retry-after-ms": "9816", "retry-after": "10",
			},
			want: Feedback{RetryAfter: 9816 * time.Millisecond, Observations: []Observation{
				{Resource: limiter.Tokens, Limit: 10000, Remaining: 0, Reset: 23*time.Hour + 47*time.Minute + 36648*time.Millisecond},
			}},
		},
		{
			name:  "azure: integer resets, retry-after-ms",
			style: Azure,
			headers: map[string]string{
				"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "10",
				"x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "12", "x-ratelimit-reset-tokens": "300",
				"retry-after-ms": "2000",
			},
			want: Feedback{RetryAfter: 2 * time.Second, Observations: []Observation{
				{Resource: limiter.Requests, Remaining: 5, Reset: 10 * time.Second},
				{Resource: limiter.Tokens, Limit: 30000, Remaining: 12, Reset: 300 * time.Second},
			}},
		},
		{
			name:  "anthropic: resets against the Date header, tokens rounded",
			style: Anthropic,
			headers: map[string]string{
				"date":                                        "Wed, 25 Nov 2026 11:59:00 GMT", // the provider's clock is a minute behind
				"anthropic-ratelimit-requests-limit":          "4000",
				"anthropic-ratelimit-requests-remaining":      "3999",
				"anthropic-ratelimit-requests-reset":          "2026-11-25T11:59:01Z",
				"anthropic-ratelimit-input-tokens-limit":      "2000000",
				"anthropic-ratelimit-input-tokens-remaining":  "1998000",
				"anthropic-ratelimit-input-tokens-reset":      "2026-11-25T11:59:02Z",
				"anthropic-ratelimit-output-tokens-limit":     "400000",
				"anthropic-ratelimit-output-tokens-remaining": "399000",
				"anthropic-ratelimit-output-tokens-reset":     "2026-11-25T11:59:00Z",
				"anthropic-ratelimit-tokens-remaining":        "399000",
				"retry-after":                                 "3",
			},
			want: Feedback{RetryAfter: 3 * time.Second, Observations: []Observation{
				{Resource: limiter.Requests, Limit: 4000, Remaining: 3999, Reset: time.Second},
				{Resource: limiter.InputTokens, Limit: 2000000, Remaining: 1998000, Slack: 500, Reset: 2 * time.Second},
				{Resource: limiter.OutputTokens, Limit: 400000, Remaining: 399000, Slack: 500, Reset: 0},
			}},
		},
		{
			name:  "garbage is ignored, never raised",
			style: OpenAI,
			headers: map[string]string{
				"x-ratelimit-limit-requests": "-5", "x-ratelimit-remaining-requests": "lots",
				"x-ratelimit-reset-requests": "soon", "x-ratelimit-remaining-tokens": "99999999999999999999",
				"retry-after": "NaN",
			},
			want: Feedback{Ignored: []string{"retry-after", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-remaining-tokens"}},
		},
		{
			name:    "retry-after as an HTTP date",
			style:   Generic,
			headers: map[string]string{"retry-after": "Wed, 25 Nov 2026 12:00:05 GMT"},
			want:    Feedback{RetryAfter: 5 * time.Second},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseHeaders(MustLookup(tc.style), tc.headers, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add("x-ratelimit-remaining-tokens", "149984", "anthropic-ratelimit-input-tokens-reset", "2026-11-25T11:59:02Z", "Wed, 25 Nov 2026 11:59:00 GMT")
	f.Add("retry-after-ms", "1e400", "retry-after", "-1", "garbage")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, date string) {
		h := map[string]string{k1: v1, k2: v2, "date": date}
		for _, style := range Names() {
			fb := ParseHeaders(MustLookup(style), h, now)
			if fb.RetryAfter < 0 || fb.RetryAfter > 24*time.Hour {
				t.Fatalf("%s: retry-after %v out of range", style, fb.RetryAfter)
			}
			for _, o := range fb.Observations {
				if o.Limit < 0 || o.Limit > maxValue || o.Remaining < -1 || o.Remaining > maxValue || o.Reset < -1 {
					t.Fatalf("%s: observation out of range: %+v", style, o)
				}
			}
		}
	})
}
