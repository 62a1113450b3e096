package provider

import (
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/tokens"
)

// generic is any other HTTP API with request and token quotas (a gateway, a
// self-hosted model): input is the counted prompt, output n x max_tokens; it reads
// OpenAI's and Anthropic's headers, whichever are present, knows OpenAI's models,
// and takes every known spent-quota code.
type generic struct{}

func (generic) Name() Name { return Generic }

func (generic) Reserve(c Call) limiter.Cost {
	return limiter.Cost{Requests: c.Requests, InputTokens: c.PromptTokens, OutputTokens: c.N * c.MaxOutputTokens}
}

func (generic) Encoding(model string) string { return openAIEncoding(model) }

func (generic) CharsPerToken() float64 { return tokens.DefaultCharsPerToken }

func (generic) QuotaSpent(o Outcome) (string, bool) {
	if reason, ok := spentCode(openAISpent, o.ProviderError); ok {
		return reason, true
	}
	return spentCode(anthropicSpent, o.ProviderError)
}

func (generic) readHeaders(h map[string]string, now time.Time, f *Feedback) {
	f.readXRateLimit(h, parseSecondsOrGoDuration)
	anthropic{}.readHeaders(h, now, f)
}
