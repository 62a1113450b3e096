package providersim

import (
	"encoding/json"
	"net/http"
	"time"
)

// message is the outcome of an admitted Messages request.
type message struct {
	ID        string
	Model     string
	maxTokens int64
	usage     usage // actual usage
}

type messageUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type messageBody struct {
	ID           string       `json:"id"`
	Type         string       `json:"type"`
	Role         string       `json:"role"`
	Model        string       `json:"model"`
	Content      []textBlock  `json:"content"`
	StopReason   *string      `json:"stop_reason"`
	StopSequence *string      `json:"stop_sequence"`
	Usage        messageUsage `json:"usage"`
}

// stopReason is "max_tokens" when the output used the whole cap.
func (m message) stopReason() *string {
	if m.usage.output >= m.maxTokens {
		return strPtr("max_tokens")
	}
	return strPtr("end_turn")
}

// body is the Message object after output tokens: complete (content and stop
// reason) when output is the whole output, else empty as in message_start.
func (m message) body(output int64) messageBody {
	b := messageBody{ID: m.ID, Type: "message", Role: "assistant", Model: m.Model, Content: []textBlock{},
		Usage: messageUsage{InputTokens: m.usage.input, OutputTokens: output}}
	if output == m.usage.output {
		b.Content = []textBlock{{Type: "text", Text: words(0, output)}}
		b.StopReason = m.stopReason()
	}
	return b
}

// streamMessage writes the response as Anthropic server-sent events:
// message_start (with input_tokens) after the time to first token,
// content_block_start, a content_block_delta per streamChunkTokens tokens as they
// become ready, content_block_stop, message_delta (with output_tokens) and
// message_stop.
func (s *Server) streamMessage(w http.ResponseWriter, r *http.Request, start time.Time, m message) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(event string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := w.Write([]byte("event: " + event + "\ndata: " + string(data) + "\n\n")); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	ctx := r.Context()
	if s.sleepUntil(ctx, s.tokenDeadline(start, 0)) != nil {
		return
	}
	if !send("message_start", map[string]any{"type": "message_start", "message": m.body(0)}) ||
		!send("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": textBlock{Type: "text", Text: ""}}) {
		return
	}
	for done := int64(0); done < m.usage.output; {
		next := min(done+streamChunkTokens, m.usage.output)
		if s.sleepUntil(ctx, s.tokenDeadline(start, next)) != nil {
			return
		}
		if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]string{"type": "text_delta", "text": words(done, next-done)}}) {
			return
		}
		done = next
	}
	_ = send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) &&
		send("message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": m.stopReason(), "stop_sequence": nil},
			"usage": map[string]int64{"output_tokens": m.usage.output}}) &&
		send("message_stop", map[string]string{"type": "message_stop"})
}
