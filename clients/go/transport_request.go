package quotad

import (
	"bytes"
	"encoding/json"
	"strings"
)

// api is an LLM endpoint the Transport understands.
type api int

const (
	apiChat       api = iota + 1 // OpenAI POST .../chat/completions
	apiResponses                 // OpenAI POST .../responses
	apiEmbeddings                // OpenAI POST .../embeddings
	apiMessages                  // Anthropic POST .../messages
)

// routes map path suffixes to endpoints; a suffix, so that base URLs with any
// prefix (/v1, /openai/deployments/x, a gateway's path) match.
var routes = []struct {
	suffix string
	api    api
}{
	{"/chat/completions", apiChat},
	{"/responses", apiResponses},
	{"/embeddings", apiEmbeddings},
	{"/messages", apiMessages},
}

// routeOf returns the endpoint of a request path, or 0.
func routeOf(path string) api {
	path = strings.TrimSuffix(path, "/")
	for _, r := range routes {
		if strings.HasSuffix(path, r.suffix) {
			return r.api
		}
	}
	return 0
}

// providerCall is what the Transport understood of a request body: what quotad
// needs to reserve the call's cost.
type providerCall struct {
	api   api
	model string
	// The input: chat messages, or a text. Embeddings given as token ids have
	// neither, and inputTokens counts them.
	messages    []Message
	text        string
	isText      bool
	inputTokens int64
	// The output cap (max_tokens and its variants), when the request gives one.
	maxOutput    int64
	hasMaxOutput bool
	n            int64
}

// acquireOptions returns the options that send the call's prompt to quotad.
func (c *providerCall) acquireOptions() []AcquireOption {
	var opts []AcquireOption
	switch {
	case c.isText:
		opts = append(opts, WithPromptText(c.model, c.text))
	case c.messages != nil:
		opts = append(opts, WithPrompt(c.model, c.messages...))
	default: // token ids: counted here, sent as the cost
		return nil
	}
	if c.hasMaxOutput {
		opts = append(opts, WithMaxOutputTokens(c.maxOutput))
	}
	if c.n > 1 {
		opts = append(opts, WithCompletions(c.n))
	}
	return opts
}

// cost is the Cost sent with the Acquire; with a prompt, quotad computes the
// tokens itself.
func (c *providerCall) cost() Cost {
	return Cost{Requests: 1, InputTokens: c.inputTokens}
}

// wireRequest holds the request fields of the four endpoints that matter to the
// cost. A field of an unexpected type makes the request not understood.
type wireRequest struct {
	Model    string        `json:"model"`
	Messages []wireMessage `json:"messages"`
	// Anthropic's system prompt: a string or text blocks.
	System json.RawMessage `json:"system"`
	// Responses: instructions and input (a string or items). Embeddings: input
	// (a string, strings, or token ids).
	Instructions string          `json:"instructions"`
	Input        json.RawMessage `json:"input"`

	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	MaxOutputTokens     *int64 `json:"max_output_tokens"`
	N                   *int64 `json:"n"`
}

// wireMessage is a chat message (OpenAI or Anthropic) or a Responses input item.
type wireMessage struct {
	Role    string          `json:"role"`
	Name    string          `json:"name"`
	Content json.RawMessage `json:"content"`
	// OpenAI assistant tool calls; their arguments are input too.
	ToolCalls []struct {
		Function struct {
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
	// Responses items: a function call's arguments, a tool's output.
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// parseCall reads a request body for endpoint a. ok is false when the body is
// not a request the Transport can price: not JSON, or no model.
func parseCall(a api, path string, body []byte) (call *providerCall, ok bool) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, false
	}
	c := &providerCall{api: a, model: w.Model}
	if c.model == "" {
		c.model = azureDeployment(path)
	}
	if c.model == "" {
		return nil, false
	}
	switch a {
	case apiChat:
		c.messages = chatMessages(w.Messages)
		c.maxOutput, c.hasMaxOutput = firstSet(w.MaxCompletionTokens, w.MaxTokens)
		if w.N != nil {
			c.n = *w.N
		}
	case apiMessages:
		if system := textOf(w.System); system != "" {
			c.messages = append(c.messages, Message{Role: "system", Content: system})
		}
		c.messages = append(c.messages, chatMessages(w.Messages)...)
		c.maxOutput, c.hasMaxOutput = firstSet(w.MaxTokens)
	case apiResponses:
		c.messages = responsesInput(w.Instructions, w.Input)
		c.maxOutput, c.hasMaxOutput = firstSet(w.MaxOutputTokens)
	case apiEmbeddings:
		if !c.embeddingsInput(w.Input) {
			return nil, false
		}
		c.maxOutput, c.hasMaxOutput = 0, true // embeddings have no output
	}
	if c.messages == nil && !c.isText && c.inputTokens == 0 {
		c.messages = []Message{} // an empty prompt is still a prompt
	}
	if c.maxOutput < 0 || c.n < 0 {
		return nil, false
	}
	return c, true
}

// azureDeployment returns the deployment name of an Azure OpenAI path
// (/openai/deployments/{name}/chat/completions), whose body names no model.
func azureDeployment(path string) string {
	_, rest, ok := strings.Cut(path, "/deployments/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// firstSet returns the first value given.
func firstSet(vs ...*int64) (int64, bool) {
	for _, v := range vs {
		if v != nil {
			return *v, true
		}
	}
	return 0, false
}

// chatMessages converts chat messages, keeping their text.
func chatMessages(ws []wireMessage) []Message {
	out := make([]Message, 0, len(ws))
	for _, w := range ws {
		var b strings.Builder
		b.WriteString(textOf(w.Content))
		for _, tc := range w.ToolCalls {
			b.WriteString(tc.Function.Arguments)
		}
		out = append(out, Message{Role: w.Role, Name: w.Name, Content: b.String()})
	}
	return out
}

// responsesInput converts a Responses request's instructions and input (a
// string, or message and tool items) to messages.
func responsesInput(instructions string, input json.RawMessage) []Message {
	var out []Message
	if instructions != "" {
		out = append(out, Message{Role: "system", Content: instructions})
	}
	var s string
	if json.Unmarshal(input, &s) == nil {
		return append(out, Message{Role: "user", Content: s})
	}
	var items []wireMessage
	if json.Unmarshal(input, &items) != nil {
		return out
	}
	for _, it := range items {
		role := it.Role
		if role == "" {
			role = "user"
		}
		content := textOf(it.Content) + it.Arguments + textOf(it.Output)
		out = append(out, Message{Role: role, Content: content})
	}
	return out
}

// embeddingsInput reads an embeddings input: a string, strings, token ids, or
// lists of token ids. It returns false for anything else.
func (c *providerCall) embeddingsInput(input json.RawMessage) bool {
	var s string
	if json.Unmarshal(input, &s) == nil {
		c.text, c.isText = s, true
		return true
	}
	var ss []string
	if json.Unmarshal(input, &ss) == nil {
		c.text, c.isText = strings.Join(ss, "\n"), true
		return true
	}
	var ids []int64
	if json.Unmarshal(input, &ids) == nil {
		c.inputTokens = int64(len(ids))
		return true
	}
	var lists [][]int64
	if json.Unmarshal(input, &lists) == nil {
		for _, l := range lists {
			c.inputTokens += int64(len(l))
		}
		return true
	}
	return false
}

// textOf returns the text of a content value: a string, or a list of parts
// whose text (and nested content, as in Anthropic's tool results) it joins.
// Images and other parts without text count nothing.
func textOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		if json.Unmarshal(p, &s) == nil {
			b.WriteString(s)
			continue
		}
		var part struct {
			Text    json.RawMessage `json:"text"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(p, &part) != nil {
			continue
		}
		if json.Unmarshal(part.Text, &s) == nil {
			b.WriteString(s)
		}
		b.WriteString(textOf(part.Content))
	}
	return b.String()
}
