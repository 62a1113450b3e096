package providersim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// messagesRequest is the part of a Messages request the simulator reads.
type messagesRequest struct {
	Model     string          `json:"model"`
	MaxTokens *int64          `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream bool `json:"stream"`
}

// messagesCall is a validated Messages request.
type messagesCall struct {
	model       string
	inputTokens int64
	maxTokens   int64
	stream      bool
}

// parseMessages validates a Messages body. The input estimate is
// ceil(characters/4) over the system prompt and the text of every message.
func parseMessages(body []byte) (messagesCall, error) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return messagesCall{}, fmt.Errorf("invalid JSON body: %w", err)
	}
	switch {
	case req.Model == "":
		return messagesCall{}, errors.New("model: Field required")
	case req.MaxTokens == nil:
		return messagesCall{}, errors.New("max_tokens: Field required")
	case len(req.Messages) == 0:
		return messagesCall{}, errors.New("messages: at least one message is required")
	}
	maxTokens, err := outputCap("max_tokens", req.MaxTokens, 0)
	if err != nil {
		return messagesCall{}, err
	}
	chars, err := textChars(req.System)
	if err != nil {
		return messagesCall{}, fmt.Errorf("system: %w", err)
	}
	for i, m := range req.Messages {
		n, err := textChars(m.Content)
		if err != nil {
			return messagesCall{}, fmt.Errorf("messages.%d: %w", i, err)
		}
		chars += n
	}
	return messagesCall{model: req.Model, inputTokens: charTokens(chars), maxTokens: maxTokens, stream: req.Stream}, nil
}

func writeAnthropicError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{
		"type":  "error",
		"error": map[string]string{"type": typ, "message": msg},
	})
}

// handleMessages serves POST /v1/messages. Admission charges 1 request, the
// input estimate to input tokens and max_tokens to output tokens; completion
// settles output tokens to the actual output (input_tokens equals the estimate).
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("x-api-key")
	if key == "" { // the Anthropic SDKs may send the key as a bearer token instead
		key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if key == "" {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header (or Authorization: Bearer) is required")
		return
	}
	body, status, err := s.readBody(w, r)
	if err != nil {
		typ := "invalid_request_error"
		if status == http.StatusRequestEntityTooLarge {
			typ = "request_too_large"
		}
		writeAnthropicError(w, status, typ, err.Error())
		return
	}
	call, err := parseMessages(body)
	if err != nil {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	id := poolID{api: apiAnthropic, key: key, model: call.model}
	estimate := usage{input: call.inputTokens, output: call.maxTokens}
	t, d := s.lim.admit(id, estimate)
	now := d.at
	setAnthropicHeaders(w.Header(), now, d.state)
	if !d.admitted {
		s.refuseAnthropic(w, now, id, estimate, d)
		return
	}
	t.recordGen = s.rec.admitted(now, id, estimate)
	actual := usage{input: call.inputTokens, output: s.drawOutput(call.maxTokens)}
	defer func() {
		end := s.lim.settle(t, actual)
		s.rec.settled(end, id, t.recordGen, estimate, actual)
	}()

	m := message{ID: s.nextID("msg_sim_"), Model: call.model, maxTokens: call.maxTokens, usage: actual}
	if call.stream {
		s.streamMessage(w, r, now, m)
		return
	}
	if s.sleepUntil(r.Context(), s.tokenDeadline(now, actual.output)) != nil {
		return // the client is gone
	}
	writeJSON(w, http.StatusOK, m.body(m.usage.output))
}

// refuseAnthropic writes the 429 of a refused decision; a request that can never
// fit gets no retry-after.
func (s *Server) refuseAnthropic(w http.ResponseWriter, now time.Time, id poolID, estimate usage, d decision) {
	what := map[resource]string{resRequests: "requests", resInput: "input tokens", resOutput: "output tokens"}[d.binding]
	reason := map[resource]string{resRequests: "requests", resInput: "input_tokens", resOutput: "output_tokens"}[d.binding]
	if d.tooLarge {
		reason = "request_too_large"
	} else {
		setRetryAfter(w.Header(), d.retryAfter, false)
	}
	s.rec.refused(now, id, reason, estimate)
	writeAnthropicError(w, http.StatusTooManyRequests, "rate_limit_error", fmt.Sprintf(
		"This request would exceed the rate limit for your organization (%s) of %s %s per minute. "+
			"For details, refer to: https://docs.claude.com/en/api/rate-limits. "+
			"You can see the response headers for current usage. "+
			"Please reduce the prompt length or the maximum tokens requested, or try again later.",
		s.cfg.Organization, thousands(d.limit), what))
}

// setAnthropicHeaders sets anthropic-ratelimit-* for the enforced buckets. Token
// remaining values are rounded to the nearest thousand; resets are the RFC 3339
// time (UTC, rounded up to the second) at which the bucket is full. The tokens-*
// headers repeat whichever of input and output tokens has less remaining.
func setAnthropicHeaders(h http.Header, now time.Time, st [numResources]bucketState) {
	set := func(name string, s bucketState, round bool) {
		rem := s.remaining
		if round {
			rem = (rem + 500) / 1000 * 1000
		}
		full := now.Add(s.reset).UTC()
		if t := full.Truncate(time.Second); !t.Equal(full) {
			full = t.Add(time.Second)
		}
		h.Set("anthropic-ratelimit-"+name+"-limit", itoa(s.limit))
		h.Set("anthropic-ratelimit-"+name+"-remaining", itoa(rem))
		h.Set("anthropic-ratelimit-"+name+"-reset", full.Format(time.RFC3339))
	}
	if st[resRequests].present {
		set("requests", st[resRequests], false)
	}
	in, out := st[resInput], st[resOutput]
	if in.present {
		set("input-tokens", in, true)
	}
	if out.present {
		set("output-tokens", out, true)
	}
	switch {
	case in.present && (!out.present || in.remaining <= out.remaining):
		set("tokens", in, true)
	case out.present:
		set("tokens", out, true)
	}
}

// thousands formats n >= 0 with comma separators, as 30,000.
func thousands(n int64) string {
	s := itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
