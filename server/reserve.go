package server

import (
	"errors"
	"fmt"

	"github.com/quotad/quotad/config"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/provider"
	"github.com/quotad/quotad/tokens"
)

// Reservation: a call that sends its prompt is charged at least what the pool's
// provider's own admission check charges (see provider.Style.Reserve).

// Bounds on a prompt and its output.
const (
	maxPromptMessages = 10000
	maxN              = 128
)

// reserve returns the cost of an Acquire that carries a prompt, for pool p.
func reserve(p config.Pool, r *quotadv1.AcquireRequest) (limiter.Cost, error) {
	style := p.Style()
	count, chars, err := countPrompt(style, *p.CharsPerToken, r.GetModel(), r.GetPrompt())
	if err != nil {
		return limiter.Cost{}, err
	}
	maxOut := *p.MaxOutputTokens
	if r.MaxOutputTokens != nil {
		maxOut = r.GetMaxOutputTokens()
	}
	if maxOut < 0 || maxOut > limiter.MaxUnits {
		return limiter.Cost{}, fmt.Errorf("max_output_tokens %d must be within [0, %d]", maxOut, int64(limiter.MaxUnits))
	}
	n := max(r.GetN(), 1)
	if n > maxN {
		return limiter.Cost{}, fmt.Errorf("n %d must be within [1, %d]", r.GetN(), maxN)
	}
	return style.Reserve(provider.Call{
		Requests:        max(r.GetCost().GetRequests(), 1),
		PromptTokens:    count.Tokens,
		PromptChars:     chars,
		MaxOutputTokens: maxOut,
		N:               n,
	}), nil
}

// countPrompt counts a prompt's tokens for model in style, and its character
// estimate.
func countPrompt(style provider.Style, charsPerToken float64, model string, p *quotadv1.Prompt) (tokens.Count, int64, error) {
	msgs := p.GetMessages()
	if p.GetText() != "" && len(msgs) > 0 {
		return tokens.Count{}, 0, errors.New("prompt has both text and messages; send one")
	}
	if len(msgs) > maxPromptMessages {
		return tokens.Count{}, 0, fmt.Errorf("prompt has %d messages, more than %d", len(msgs), maxPromptMessages)
	}
	list := make([]tokens.Message, len(msgs))
	for i, m := range msgs {
		list[i] = tokens.Message{Role: m.GetRole(), Content: m.GetContent(), Name: m.GetName()}
	}
	return provider.CountPrompt(style, model, charsPerToken, p.GetText(), list)
}

// settledUsage is what a Report's usage counts against the pool's limits: cache
// writes count as input, cache reads only where the pool says so.
func settledUsage(p config.Pool, u *quotadv1.Usage) limiter.Usage {
	in := u.GetInputTokens() + u.GetCacheCreationInputTokens()
	if p.CountCacheReads {
		in += u.GetCacheReadInputTokens()
	}
	return limiter.Usage{InputTokens: in, OutputTokens: u.GetOutputTokens()}
}
