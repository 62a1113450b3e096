package provider

import (
	"strings"
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/tokens"
)

// openAI is OpenAI's API. Its limiter admits a call by an estimate from the
// request's characters (about four per token), not from its tokens, and reserves
// n x max_tokens of output in the same tokens limit. Its headers are
// x-ratelimit-{limit,remaining,reset}-{requests,tokens}, resets as Go durations
// ("6m0s").
type openAI struct{}

func (openAI) Name() Name { return OpenAI }

func (openAI) Reserve(c Call) limiter.Cost {
	return limiter.Cost{Requests: c.Requests, InputTokens: max(c.PromptTokens, c.PromptChars), OutputTokens: c.N * c.MaxOutputTokens}
}

func (openAI) Encoding(model string) string { return openAIEncoding(model) }

func (openAI) CharsPerToken() float64 { return tokens.DefaultCharsPerToken }

// openAISpent are OpenAI's error codes for a spent quota or spend limit.
var openAISpent = []string{
	"insufficient_quota",
	"organization_spend_limit_exceeded",
	"project_spend_limit_exceeded",
	"organization_usage_limit_exceeded",
}

func (openAI) QuotaSpent(o Outcome) (string, bool) { return spentCode(openAISpent, o.ProviderError) }

func (openAI) readHeaders(h map[string]string, _ time.Time, f *Feedback) {
	f.readXRateLimit(h, parseGoDuration)
}

// openAIModels maps model-name prefixes to encodings, following Python tiktoken's
// model.py. openAIEncoding picks the longest matching prefix, so "gpt-4o-mini" is
// o200k_base although "gpt-4" is cl100k_base. Read-only; keep in step with new
// OpenAI model families.
var openAIModels = []struct{ prefix, encoding string }{
	{"gpt-5", tokens.O200kBase},
	{"gpt-4.5", tokens.O200kBase},
	{"gpt-4.1", tokens.O200kBase},
	{"gpt-4o", tokens.O200kBase},
	{"chatgpt-4o", tokens.O200kBase},
	{"o1", tokens.O200kBase},
	{"o3", tokens.O200kBase},
	{"o4-mini", tokens.O200kBase},
	{"gpt-oss-", tokens.O200kHarmony},

	{"gpt-4", tokens.CL100kBase},
	{"gpt-3.5-turbo", tokens.CL100kBase},
	{"gpt-35-turbo", tokens.CL100kBase}, // Azure deployment-style name
	{"text-embedding-ada-002", tokens.CL100kBase},
	{"text-embedding-3-", tokens.CL100kBase},
	{"davinci-002", tokens.CL100kBase},
	{"babbage-002", tokens.CL100kBase},
}

// openAINamePrefixes are stripped before matching: fine-tuned models
// ("ft:gpt-4o-mini-2024-07-18:org::id") and gateway-style provider prefixes.
var openAINamePrefixes = []string{"openai/", "azure/", "ft:"}

// openAIEncoding returns the tiktoken encoding of an OpenAI model name
// (case-insensitive, longest-prefix match), or "" for models it does not know,
// including every non-OpenAI model and Azure deployments given custom names.
func openAIEncoding(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	for _, p := range openAINamePrefixes {
		m = strings.TrimPrefix(m, p)
	}
	encoding, best := "", -1
	for _, e := range openAIModels {
		if strings.HasPrefix(m, e.prefix) && len(e.prefix) > best {
			encoding, best = e.encoding, len(e.prefix)
		}
	}
	return encoding
}

// parseGoDuration reads OpenAI's resets: Go durations such as "1s", "6m0s", "12ms".
func parseGoDuration(v string) (time.Duration, bool) {
	d, err := time.ParseDuration(v)
	return d, err == nil && d >= 0
}
