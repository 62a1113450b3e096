// Package provider holds everything that differs between provider APIs, one file
// per style, keyed by name in one table (styles): what the provider's admission
// check charges for a call (the reservation), how its models' tokens are counted,
// what its rate-limit headers say, and which of its errors mean the key's quota is
// spent rather than busy. The rest of quotad asks a Style and never names a
// provider. Adding a provider is one new file and one row in styles.
//
// Styles are stateless values, safe for concurrent use; nothing here does I/O.
package provider

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/tokens"
)

// Name names a provider style, as a pool's `provider:` in the config.
type Name string

// The styles, by name.
const (
	Generic   Name = "generic"
	OpenAI    Name = "openai"
	Azure     Name = "azure"
	Anthropic Name = "anthropic"
)

// Default is the style of a pool that names none.
const Default = Generic

// styles is the table of provider styles. The order of Names follows it.
var styles = []struct {
	name  Name
	style Style
}{
	{Generic, generic{}},
	{OpenAI, openAI{}},
	{Azure, azure{}},
	{Anthropic, anthropic{}},
}

// Style is one provider API's rules.
type Style interface {
	// Name is the style's name in the table.
	Name() Name
	// Reserve returns what the provider's admission check charges for call: at
	// least that, so that a grant is never smaller than what the provider takes
	// on arrival.
	Reserve(call Call) limiter.Cost
	// Encoding returns the tokenizer (a tokens encoding) of model, or "" when the
	// style knows none and tokens are estimated from characters.
	Encoding(model string) string
	// CharsPerToken is the estimate for models with no known tokenizer, unless
	// the pool sets chars_per_token.
	CharsPerToken() float64
	// QuotaSpent says whether a failed call's error code (its error type or
	// code, as the provider sent it), outcome and retry-after mean the key's
	// quota is spent (waiting does not help), and why.
	QuotaSpent(call Outcome) (reason string, spent bool)
	// readHeaders reads the style's rate-limit headers (names lower case,
	// values trimmed) into f. now is when the response arrived.
	readHeaders(h map[string]string, now time.Time, f *Feedback)
}

// Lookup returns the style named name; "" is Default.
func Lookup(name Name) (Style, error) {
	if name == "" {
		name = Default
	}
	for _, s := range styles {
		if s.name == name {
			return s.style, nil
		}
	}
	return nil, fmt.Errorf("%q is not a provider (want %s)", name, namesList())
}

// MustLookup returns the style named name, or Default's for an unknown name. It
// is for names already validated (config.Pool's).
func MustLookup(name Name) Style {
	if s, err := Lookup(name); err == nil {
		return s
	}
	s, _ := Lookup(Default)
	return s
}

// Names lists the styles' names, in table order.
func Names() []Name {
	out := make([]Name, len(styles))
	for i, s := range styles {
		out[i] = s.name
	}
	return out
}

func namesList() string {
	names := make([]string, 0, len(styles))
	for _, n := range Names() {
		names = append(names, string(n))
	}
	return strings.Join(names, ", ")
}

// Call is what a provider's admission check sees of one call.
type Call struct {
	// Requests the call takes (at least 1).
	Requests int64
	// PromptTokens is the prompt's token count (exact, or estimated for a
	// model without a known tokenizer); PromptChars is ceil(characters/4) of
	// its text, the estimate OpenAI-style limiters admit by.
	PromptTokens, PromptChars int64
	// MaxOutputTokens is the call's output cap (max_tokens); N how many
	// completions it asks for (at least 1).
	MaxOutputTokens int64
	N               int64
}

// Outcome is what a Report says of a failed provider call.
type Outcome struct {
	// ProviderError is the provider's error type or code (for example
	// "insufficient_quota"); "" when none.
	ProviderError string
	// RateLimited: the provider answered 429.
	RateLimited bool
	// RetryAfter is the provider's retry-after; 0 when it sent none.
	RetryAfter time.Duration
}

// CountPrompt counts a prompt for model with style s: its tokens (encoded when the
// style knows the model's tokenizer, else estimated at charsPerToken) and its
// character estimate. Exactly one of text and msgs is set.
func CountPrompt(s Style, model string, charsPerToken float64, text string, msgs []tokens.Message) (tokens.Count, int64, error) {
	counter, err := tokens.NewCounter(tokens.WithCharsPerToken(charsPerToken))
	if err != nil {
		return tokens.Count{}, 0, err
	}
	enc := s.Encoding(model)
	if len(msgs) == 0 {
		count, err := counter.CountText(enc, text)
		return count, tokens.CharEstimate(text), err
	}
	var chars int64
	for _, m := range msgs {
		chars += tokens.CharEstimate(m.Content)
	}
	count, err := counter.CountMessages(enc, msgs)
	return count, chars, err
}

// spentCodes are provider error types and codes that mean a key's quota is spent,
// not that it is busy; each style lists its own, the generic style all of them.
func spentCode(codes []string, code string) (string, bool) {
	if code != "" && slices.Contains(codes, code) {
		return "provider quota exhausted: " + code, true
	}
	return "", false
}
