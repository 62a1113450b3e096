package tokens

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// DefaultCharsPerToken is the estimate used for models without a known
// tokenizer. Four characters per token is OpenAI's documented rule of thumb
// for English text and the ratio of the providers' own admission estimate
// (see CharEstimate). Other tokenizers differ, and code and non-Latin scripts
// take more tokens per character (CJK text is closer to 1-1.5 characters per
// token), so pools serving such traffic should configure a lower value.
// Reports reconcile the estimate with the provider's actual usage.
const DefaultCharsPerToken = 4.0

// Chat overheads as the OpenAI cookbook counts them for current chat models
// (gpt-3.5-turbo-0613 and later, gpt-4, gpt-4o and newer).
const (
	tokensPerMessage = 3 // <|start|>{role/name}\n{content}<|end|>\n
	tokensPerName    = 1
	tokensReplyPrime = 3 // every reply is primed with <|start|>assistant<|message|>
)

// Count is a token count.
type Count struct {
	Tokens int64
	// Encoding is the tiktoken encoding used; empty when the model has no
	// known tokenizer.
	Encoding string
	// Estimated is true when Tokens is not tiktoken's exact count: the model
	// has no known tokenizer (Encoding is empty and Tokens was derived from the
	// character count), or the text held a run of over 512 bytes of letters,
	// whitespace or punctuation with no break, which is counted in chunks
	// (Encoding is set and Tokens is within a few tokens per 512 bytes).
	Estimated bool
}

// Message is one chat message. Name is optional; when non-empty it is
// counted with the cookbook's extra token.
type Message struct {
	Role, Content, Name string
}

// Counter counts tokens for a model. It holds only configuration (the
// encoders are shared process-wide), so it is cheap to create one per pool.
// A Counter is immutable and safe for concurrent use.
type Counter struct {
	charsPerToken float64
}

// Option configures a Counter.
type Option func(*Counter)

// WithCharsPerToken sets the characters-per-token ratio used for models
// without a known tokenizer (default DefaultCharsPerToken). It must be finite
// and positive; NewCounter reports an error otherwise.
func WithCharsPerToken(r float64) Option {
	return func(c *Counter) { c.charsPerToken = r }
}

// NewCounter returns a Counter configured by opts.
func NewCounter(opts ...Option) (*Counter, error) {
	c := &Counter{charsPerToken: DefaultCharsPerToken}
	for _, o := range opts {
		o(c)
	}
	if r := c.charsPerToken; !(r > 0) || math.IsInf(r, 0) {
		return nil, fmt.Errorf("tokens: chars per token must be finite and positive, got %v", r)
	}
	return c, nil
}

// CountText counts the tokens of text in encoding (one of Encodings, chosen for
// the model by its provider), exactly as Python tiktoken's encode_ordinary does
// (special-token text is ordinary text). With encoding "" (a model with no known
// tokenizer) the count is estimated from the number of Unicode characters. The
// first exact count of an encoding builds its encoder unless Warm was called. An
// error means the encoding is unknown or its encoder could not be built.
func (c *Counter) CountText(encoding, text string) (Count, error) {
	if encoding == "" {
		return c.estimate(int64(utf8.RuneCountInString(text)), 0), nil
	}
	enc, err := sharedEncoder(encoding)
	if err != nil {
		return Count{}, fmt.Errorf("tokens: count text in %s: %w", encoding, err)
	}
	n, exact := enc.count(text)
	return Count{Tokens: n, Encoding: encoding, Estimated: !exact}, nil
}

// CountMessages counts a chat request's prompt tokens in encoding the way the
// OpenAI cookbook does: role, content and name are encoded, plus 3 tokens per
// message, 1 per name and 3 to prime the reply. With encoding "" the text is
// estimated from its characters and the same overheads are added.
func (c *Counter) CountMessages(encoding string, msgs []Message) (Count, error) {
	overhead := int64(tokensReplyPrime)
	for _, m := range msgs {
		overhead += tokensPerMessage
		if m.Name != "" {
			overhead += tokensPerName
		}
	}
	if encoding == "" {
		var chars int64
		for _, m := range msgs {
			chars += int64(utf8.RuneCountInString(m.Role) + utf8.RuneCountInString(m.Content) + utf8.RuneCountInString(m.Name))
		}
		return c.estimate(chars, overhead), nil
	}
	enc, err := sharedEncoder(encoding)
	if err != nil {
		return Count{}, fmt.Errorf("tokens: count messages in %s: %w", encoding, err)
	}
	total, allExact := overhead, true
	for _, m := range msgs {
		for _, field := range [...]string{m.Role, m.Content, m.Name} {
			n, exact := enc.count(field)
			total, allExact = total+n, allExact && exact
		}
	}
	return Count{Tokens: total, Encoding: encoding, Estimated: !allExact}, nil
}

func (c *Counter) estimate(chars, overhead int64) Count {
	return Count{Tokens: int64(math.Ceil(float64(chars)/c.charsPerToken)) + overhead, Estimated: true}
}

// CharEstimate returns ceil(characters/4), an approximation of the estimate
// OpenAI and Azure OpenAI admit requests with: their limiters do not tokenize
// the prompt but estimate "based on the character count" of the request, and
// four characters per token is OpenAI's published rule of thumb. Characters
// are Unicode code points (what Python's len counts), not bytes, which would
// overcount non-ASCII text two- to four-fold; each invalid UTF-8 byte counts
// as one character.
func CharEstimate(text string) int64 {
	return (int64(utf8.RuneCountInString(text)) + 3) / 4
}
