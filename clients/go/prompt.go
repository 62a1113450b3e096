package quotad

import (
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Message is one chat message of a prompt.
type Message struct {
	Role    string
	Content string
	// Name is the optional name of the participant (OpenAI's name field).
	Name string
}

// WithPrompt sends the call's chat messages and model with the Acquire, so that
// quotad counts the input tokens itself and reserves at least what the provider
// charges at admission, by the pool's provider style (OpenAI and Azure estimate
// the prompt from its characters; both count output as n x max_tokens). The
// input and output tokens of the Acquire's Cost are then ignored: the output
// reserved is WithMaxOutputTokens, else the pool's max_output_tokens.
func WithPrompt(model string, messages ...Message) AcquireOption {
	return func(c *acquireConfig) {
		p := &quotadv1.Prompt{Messages: make([]*quotadv1.Message, len(messages))}
		for i, m := range messages {
			p.Messages[i] = &quotadv1.Message{Role: m.Role, Content: m.Content, Name: m.Name}
		}
		c.model, c.prompt = model, p
	}
}

// WithPromptText is WithPrompt for a call whose input is a plain text (a
// completion or an embedding input) rather than chat messages.
func WithPromptText(model, text string) AcquireOption {
	return func(c *acquireConfig) {
		c.model, c.prompt = model, &quotadv1.Prompt{Text: text}
	}
}

// WithMaxOutputTokens sets the call's output cap (its max_tokens), with
// WithPrompt or WithPromptText: quotad reserves that much output. Without it,
// the pool's max_output_tokens is reserved.
func WithMaxOutputTokens(n int64) AcquireOption {
	return func(c *acquireConfig) { c.maxOutput, c.hasMaxOutput = n, true }
}

// WithCompletions sets how many completions the call asks for (OpenAI's n), with
// WithPrompt or WithPromptText: an OpenAI-style pool reserves n times the output
// cap. The default is 1.
func WithCompletions(n int64) AcquireOption {
	return func(c *acquireConfig) { c.completions = n }
}

// applyPrompt puts the prompt options on req, if a prompt was given.
func (c *acquireConfig) applyPrompt(req *quotadv1.AcquireRequest) {
	if c.prompt == nil {
		return
	}
	req.Prompt, req.Model, req.N = c.prompt, c.model, c.completions
	if c.hasMaxOutput {
		req.MaxOutputTokens = &c.maxOutput
	}
}
