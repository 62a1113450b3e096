package server

import (
	"errors"
	"fmt"

	"github.com/quotad/quotad/config"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server/limiter"
	"github.com/quotad/quotad/server/tokens"
)

// Reservation: a call that sends its prompt is charged at least what the provider's
// own admission estimate charges. OpenAI and Azure estimate the prompt from its
// characters (about four per token), not from its tokens, and reserve n x
// max_tokens of output in the same tokens limit; Anthropic counts input and output
// separately and reserves max_tokens of output.

// maxPromptMessages bounds the messages of one prompt.
const maxPromptMessages = 10000

// reserve returns the cost of an Acquire that carries a prompt, for pool p.
func reserve(p config.Pool, r *quotadv1.AcquireRequest) (limiter.Cost, error) {
	counter, err := tokens.NewCounter(tokens.WithCharsPerToken(*p.CharsPerToken))
	if err != nil {
		return limiter.Cost{}, fmt.Errorf("pool %q chars_per_token: %w", p.Name, err)
	}
	count, chars, err := countPrompt(counter, r.GetModel(), r.GetPrompt())
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
	if n > 128 {
		return limiter.Cost{}, fmt.Errorf("n %d must be within [1, 128]", r.GetN())
	}
	cost := limiter.Cost{Requests: max(r.GetCost().GetRequests(), 1), InputTokens: count.Tokens}
	switch p.ProviderStyle() {
	case config.ProviderOpenAI, config.ProviderAzure:
		cost.InputTokens = max(count.Tokens, chars)
		cost.OutputTokens = n * maxOut
	case config.ProviderAnthropic:
		cost.OutputTokens = maxOut
	default:
		cost.OutputTokens = n * maxOut
	}
	return cost, nil
}

// countPrompt counts a prompt's tokens for model, and its character estimate
// (ceil(characters/4) of its text).
func countPrompt(c *tokens.Counter, model string, p *quotadv1.Prompt) (tokens.Count, int64, error) {
	msgs := p.GetMessages()
	if p.GetText() != "" && len(msgs) > 0 {
		return tokens.Count{}, 0, errors.New("prompt has both text and messages; send one")
	}
	if len(msgs) > maxPromptMessages {
		return tokens.Count{}, 0, fmt.Errorf("prompt has %d messages, more than %d", len(msgs), maxPromptMessages)
	}
	if len(msgs) == 0 {
		count, err := c.CountText(model, p.GetText())
		return count, tokens.CharEstimate(p.GetText()), err
	}
	list := make([]tokens.Message, len(msgs))
	var chars int64
	for i, m := range msgs {
		list[i] = tokens.Message{Role: m.GetRole(), Content: m.GetContent(), Name: m.GetName()}
		chars += tokens.CharEstimate(m.GetContent())
	}
	count, err := c.CountMessages(model, list)
	return count, chars, err
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
