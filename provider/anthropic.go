package provider

import (
	"net/http"
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/tokens"
)

// anthropic is Anthropic's Messages API. It limits input and output tokens
// separately, admits a call by its counted input and reserves max_tokens of
// output; its headers are anthropic-ratelimit-*, resets as RFC 3339 instants read
// against the response's Date; a 429 without retry-after is its spend limit.
type anthropic struct{}

func (anthropic) Name() Name { return Anthropic }

func (anthropic) Reserve(c Call) limiter.Cost {
	return limiter.Cost{Requests: c.Requests, InputTokens: c.PromptTokens, OutputTokens: c.MaxOutputTokens}
}

// Encoding: Claude's tokenizer is not public; tokens are estimated.
func (anthropic) Encoding(string) string { return "" }

func (anthropic) CharsPerToken() float64 { return tokens.DefaultCharsPerToken }

// anthropicSpent are Anthropic's error types for a spent balance.
var anthropicSpent = []string{"credit_balance_exhausted", "billing_error"}

func (anthropic) QuotaSpent(o Outcome) (string, bool) {
	if reason, ok := spentCode(anthropicSpent, o.ProviderError); ok {
		return reason, true
	}
	if o.RateLimited && o.RetryAfter == 0 {
		return "provider quota exhausted: provider answered 429 without retry-after (spend limit)", true
	}
	return "", false
}

// anthropicSlack: Anthropic rounds token remaining to the nearest thousand.
const anthropicSlack = 500

// readHeaders reads anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-*.
// The combined tokens-* headers repeat the most restrictive of the others, so they
// are used only when neither input nor output is reported.
func (anthropic) readHeaders(h map[string]string, now time.Time, f *Feedback) {
	date := now
	if v, ok := h["date"]; ok {
		if t, err := http.ParseTime(v); err == nil {
			date = t
		}
	}
	split := false
	for _, r := range []struct {
		name     string
		resource limiter.Resource
	}{
		{"requests", limiter.Requests}, {"input-tokens", limiter.InputTokens}, {"output-tokens", limiter.OutputTokens}, {"tokens", limiter.Tokens},
	} {
		if r.name == "tokens" && split {
			continue
		}
		prefix := "anthropic-ratelimit-" + r.name + "-"
		o := Observation{Resource: r.resource, Remaining: -1, Reset: -1}
		if r.resource != limiter.Requests {
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
			split = split || r.resource == limiter.InputTokens || r.resource == limiter.OutputTokens
		}
	}
}
