package providersim

import (
	"encoding/json"
	"net/http"
	"time"
)

// streamChunkTokens is how many output tokens one streamed event carries at most.
const streamChunkTokens = 8

// chatResponse is the outcome of an admitted Chat Completions request.
type chatResponse struct {
	ID           string
	Created      int64
	Model        string
	promptTokens int64
	maxOutput    int64
	outputs      []int64 // output tokens per choice
}

type chatUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

type chatMessage struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
	Refusal *string `json:"refusal"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatMessage `json:"delta,omitempty"`
	Logprobs     *struct{}    `json:"logprobs"`
	FinishReason *string      `json:"finish_reason"`
}

type chatBody struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             *chatUsage   `json:"usage,omitempty"`
}

func (c chatResponse) usage() *chatUsage {
	var out int64
	for _, n := range c.outputs {
		out += n
	}
	return &chatUsage{PromptTokens: c.promptTokens, CompletionTokens: out, TotalTokens: c.promptTokens + out}
}

// finishReason is "length" when a choice used its whole output cap.
func (c chatResponse) finishReason(i int) *string {
	if c.outputs[i] >= c.maxOutput {
		return strPtr("length")
	}
	return strPtr("stop")
}

func (c chatResponse) body(object string, choices []chatChoice, u *chatUsage) chatBody {
	return chatBody{ID: c.ID, Object: object, Created: c.Created, Model: c.Model,
		SystemFingerprint: "fp_sim", Choices: choices, Usage: u}
}

// completion is the chat.completion object.
func (c chatResponse) completion() chatBody {
	choices := make([]chatChoice, len(c.outputs))
	for i, n := range c.outputs {
		choices[i] = chatChoice{
			Index:        i,
			Message:      &chatMessage{Role: "assistant", Content: strPtr(words(0, n))},
			FinishReason: c.finishReason(i),
		}
	}
	return c.body("chat.completion", choices, c.usage())
}

// streamChat writes the response as chat.completion.chunk events: a role chunk
// per choice after the time to first token, content chunks of up to
// streamChunkTokens tokens as they become ready, a finish chunk per choice, the
// usage chunk (empty choices) when asked, then [DONE].
func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, start time.Time, c chatResponse, includeUsage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(b chatBody) bool {
		data, err := json.Marshal(b)
		if err != nil {
			return false
		}
		if _, err := w.Write(append(append([]byte("data: "), data...), '\n', '\n')); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(i int, delta *chatMessage, finish *string) chatBody {
		return c.body("chat.completion.chunk", []chatChoice{{Index: i, Delta: delta, FinishReason: finish}}, nil)
	}

	ctx := r.Context()
	if s.sleepUntil(ctx, s.tokenDeadline(start, 0)) != nil {
		return
	}
	var longest int64
	for i, n := range c.outputs {
		longest = max(longest, n)
		if !send(chunk(i, &chatMessage{Role: "assistant", Content: strPtr("")}, nil)) {
			return
		}
	}
	for done := int64(0); done < longest; {
		next := min(done+streamChunkTokens, longest)
		if s.sleepUntil(ctx, s.tokenDeadline(start, next)) != nil {
			return
		}
		for i, n := range c.outputs {
			if done < n && !send(chunk(i, &chatMessage{Content: strPtr(words(done, min(next, n)-done))}, nil)) {
				return
			}
		}
		done = next
	}
	for i := range c.outputs {
		if !send(chunk(i, &chatMessage{}, c.finishReason(i))) {
			return
		}
	}
	if includeUsage && !send(c.body("chat.completion.chunk", []chatChoice{}, c.usage())) {
		return
	}
	if _, err := w.Write([]byte("data: [DONE]\n\n")); err == nil {
		_ = rc.Flush() // the client may be gone; the response is complete either way
	}
}
