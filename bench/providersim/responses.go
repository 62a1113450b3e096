package providersim

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"
)

// responsesRequest is the part of a Responses API request the simulator reads.
type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    string          `json:"instructions"`
	MaxOutputTokens *int64          `json:"max_output_tokens"`
	Stream          bool            `json:"stream"`
}

// parseResponses validates a Responses body. The prompt estimate is
// ceil(characters/4) over the instructions and the input: a string, or items
// whose content is a string or parts with text.
func parseResponses(body []byte, defaultMax int64) (openAICall, error) {
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return openAICall{}, fmt.Errorf("invalid JSON body: %w", err)
	}
	if req.Model == "" {
		return openAICall{}, errors.New("you must provide a model parameter")
	}
	chars := runes(req.Instructions)
	if len(req.Input) > 0 && req.Input[0] == '[' {
		var items []struct {
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(req.Input, &items); err != nil {
			return openAICall{}, fmt.Errorf("input: %w", err)
		}
		for i, it := range items {
			n, err := textChars(it.Content)
			if err != nil {
				return openAICall{}, fmt.Errorf("input[%d]: %w", i, err)
			}
			chars += n
		}
	} else {
		n, err := textChars(req.Input)
		if err != nil {
			return openAICall{}, fmt.Errorf("input: %w", err)
		}
		chars += n
	}
	maxOut, err := outputCap("max_output_tokens", req.MaxOutputTokens, defaultMax)
	if err != nil {
		return openAICall{}, err
	}
	return openAICall{model: req.Model, promptTokens: charTokens(chars), maxOutput: maxOut, n: 1, stream: req.Stream}, nil
}

// handleResponses serves POST /v1/responses like Chat Completions with n = 1.
func (s *Server) handleResponses(w http.ResponseWriter, r *http.Request) {
	s.serveOpenAI(w, r, parseResponses, s.respondResponses)
}

type responseText struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responseItem struct {
	Type    string         `json:"type"`
	ID      string         `json:"id"`
	Status  string         `json:"status"`
	Role    string         `json:"role"`
	Content []responseText `json:"content"`
}

type responseUsage struct {
	InputTokens         int64            `json:"input_tokens"`
	InputTokensDetails  map[string]int64 `json:"input_tokens_details"`
	OutputTokens        int64            `json:"output_tokens"`
	OutputTokensDetails map[string]int64 `json:"output_tokens_details"`
	TotalTokens         int64            `json:"total_tokens"`
}

type responseBody struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	CreatedAt         int64             `json:"created_at"`
	Status            string            `json:"status"`
	Model             string            `json:"model"`
	Output            []responseItem    `json:"output"`
	IncompleteDetails map[string]string `json:"incomplete_details"`
	Usage             *responseUsage    `json:"usage"`
}

// respondResponses writes a response object, or streams it as response.*
// events: response.created, response.output_item.added,
// response.content_part.added, response.output_text.delta per up to 8 tokens,
// response.output_text.done, response.content_part.done,
// response.output_item.done and response.completed (with usage).
func (s *Server) respondResponses(w http.ResponseWriter, r *http.Request, start time.Time, call openAICall, outputs []int64) {
	out := outputs[0]
	item := responseItem{Type: "message", ID: s.nextID("msg_sim_"), Status: "completed", Role: "assistant",
		Content: []responseText{{Type: "output_text", Text: words(0, out), Annotations: []any{}}}}
	final := responseBody{ID: s.nextID("resp_sim_"), Object: "response", CreatedAt: start.Unix(),
		Status: "completed", Model: call.model, Output: []responseItem{item},
		Usage: &responseUsage{InputTokens: call.promptTokens, OutputTokens: out, TotalTokens: call.promptTokens + out,
			InputTokensDetails:  map[string]int64{"cached_tokens": 0},
			OutputTokensDetails: map[string]int64{"reasoning_tokens": 0}}}
	if out >= call.maxOutput {
		final.Status, final.IncompleteDetails = "incomplete", map[string]string{"reason": "max_output_tokens"}
		final.Output[0].Status = "incomplete"
	}
	if !call.stream {
		if s.sleepUntil(r.Context(), s.tokenDeadline(start, out)) == nil {
			writeJSON(w, http.StatusOK, final)
		}
		return
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	seq := 0
	send := func(typ string, fields map[string]any) bool {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		data, err := json.Marshal(fields)
		if err != nil {
			return false
		}
		if _, err := w.Write([]byte("event: " + typ + "\ndata: " + string(data) + "\n\n")); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	ctx := r.Context()
	if s.sleepUntil(ctx, s.tokenDeadline(start, 0)) != nil {
		return
	}
	created := final
	created.Status, created.Output, created.Usage, created.IncompleteDetails = "in_progress", []responseItem{}, nil, nil
	empty := responseText{Type: "output_text", Text: "", Annotations: []any{}}
	added := item
	added.Status, added.Content = "in_progress", []responseText{}
	part := map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0}
	with := func(extra map[string]any) map[string]any {
		m := maps.Clone(part)
		maps.Copy(m, extra)
		return m
	}
	if !send("response.created", map[string]any{"response": created}) ||
		!send("response.output_item.added", map[string]any{"output_index": 0, "item": added}) ||
		!send("response.content_part.added", with(map[string]any{"part": empty})) {
		return
	}
	for done := int64(0); done < out; {
		next := min(done+streamChunkTokens, out)
		if s.sleepUntil(ctx, s.tokenDeadline(start, next)) != nil ||
			!send("response.output_text.delta", with(map[string]any{"delta": words(done, next-done)})) {
			return
		}
		done = next
	}
	_ = send("response.output_text.done", with(map[string]any{"text": item.Content[0].Text})) &&
		send("response.content_part.done", with(map[string]any{"part": item.Content[0]})) &&
		send("response.output_item.done", map[string]any{"output_index": 0, "item": final.Output[0]}) &&
		send("response.completed", map[string]any{"response": final})
}
