package providersim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// chatRequest is the part of a Chat Completions request the simulator reads.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	N                   *int64 `json:"n"`
	Stream              bool   `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// openAICall is a validated OpenAI request of either endpoint: its prompt
// estimate and output cap per choice.
type openAICall struct {
	model        string
	promptTokens int64
	maxOutput    int64
	n            int64
	stream       bool
	includeUsage bool
}

// parseChat validates a Chat Completions body. The prompt estimate is
// ceil(characters/4) over the text content of every message.
func parseChat(body []byte, defaultMax int64) (openAICall, error) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return openAICall{}, fmt.Errorf("invalid JSON body: %w", err)
	}
	if req.Model == "" {
		return openAICall{}, errors.New("you must provide a model parameter")
	}
	if len(req.Messages) == 0 {
		return openAICall{}, errors.New("'messages' must contain at least one message")
	}
	var chars int64
	for i, m := range req.Messages {
		n, err := textChars(m.Content)
		if err != nil {
			return openAICall{}, fmt.Errorf("messages[%d]: %w", i, err)
		}
		chars += n
	}
	maxOut, err := outputCap("max_tokens", req.MaxTokens, defaultMax)
	if err != nil {
		return openAICall{}, err
	}
	if maxOut, err = outputCap("max_completion_tokens", req.MaxCompletionTokens, maxOut); err != nil {
		return openAICall{}, err
	}
	n := int64(1)
	if req.N != nil {
		if n = *req.N; n < 1 || n > 128 {
			return openAICall{}, fmt.Errorf("n must be between 1 and 128, got %d", n)
		}
	}
	if n*maxOut > maxOutputCap {
		return openAICall{}, fmt.Errorf("n times the output cap must be at most %d, got %d", maxOutputCap, n*maxOut)
	}
	return openAICall{
		model:        req.Model,
		promptTokens: charTokens(chars),
		maxOutput:    maxOut,
		n:            n,
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	}, nil
}

// openAIError is the "error" object of an OpenAI error response.
type openAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func writeOpenAIError(w http.ResponseWriter, status int, e openAIError) {
	writeJSON(w, status, map[string]openAIError{"error": e})
}

func strPtr(s string) *string { return &s }

// handleChat serves POST /v1/chat/completions.
func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	s.serveOpenAI(w, r, parseChat, s.respondChat)
}

// serveOpenAI runs an OpenAI-shaped request: authentication, validation by
// parse, admission (1 request and the prompt estimate plus n times the output
// cap), respond for an admitted request, and settlement to the actual usage
// (prompt_tokens equal to the estimate) once respond returns.
func (s *Server) serveOpenAI(w http.ResponseWriter, r *http.Request,
	parse func(body []byte, defaultMax int64) (openAICall, error),
	respond func(w http.ResponseWriter, r *http.Request, start time.Time, call openAICall, outputs []int64),
) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		writeOpenAIError(w, http.StatusUnauthorized, openAIError{
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
			Type:    "invalid_request_error",
		})
		return
	}
	body, status, err := s.readBody(w, r)
	if err != nil {
		writeOpenAIError(w, status, openAIError{Message: err.Error(), Type: "invalid_request_error"})
		return
	}
	call, err := parse(body, s.cfg.DefaultMaxTokens)
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, openAIError{Message: err.Error(), Type: "invalid_request_error"})
		return
	}
	id := poolID{api: apiOpenAI, key: key, model: call.model}
	estimate := usage{input: call.promptTokens, output: call.n * call.maxOutput}
	if s.exhausted[key] {
		s.rec.refused(s.cfg.Clock.Now(), id, "insufficient_quota", estimate)
		writeOpenAIError(w, http.StatusTooManyRequests, openAIError{
			Message: "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
			Type:    "insufficient_quota",
			Code:    strPtr("insufficient_quota"),
		})
		return
	}
	t, d := s.lim.admit(id, estimate)
	now := d.at
	setOpenAIHeaders(w.Header(), d.state)
	if !d.admitted {
		s.refuseOpenAI(w, now, id, estimate, d)
		return
	}
	t.recordGen = s.rec.admitted(now, id, estimate)

	outputs := make([]int64, call.n)
	actual := usage{input: call.promptTokens}
	for i := range outputs {
		outputs[i] = s.drawOutput(call.maxOutput)
		actual.output += outputs[i]
	}
	defer func() {
		end := s.lim.settle(t, actual)
		s.rec.settled(end, id, t.recordGen, estimate, actual)
	}()
	respond(w, r, now, call, outputs)
}

// respondChat writes a chat.completion, or streams it.
func (s *Server) respondChat(w http.ResponseWriter, r *http.Request, start time.Time, call openAICall, outputs []int64) {
	resp := chatResponse{
		ID: s.nextID("chatcmpl-sim-"), Created: start.Unix(), Model: call.model,
		promptTokens: call.promptTokens, maxOutput: call.maxOutput, outputs: outputs,
	}
	if call.stream {
		s.streamChat(w, r, start, resp, call.includeUsage)
		return
	}
	if s.sleepUntil(r.Context(), s.tokenDeadline(start, slices.Max(outputs))) != nil {
		return // the client is gone
	}
	writeJSON(w, http.StatusOK, resp.completion())
}

// refuseOpenAI writes the 429 of a refused decision.
func (s *Server) refuseOpenAI(w http.ResponseWriter, now time.Time, id poolID, estimate usage, d decision) {
	dim, kind := "tokens per min (TPM)", "tokens"
	if d.binding == resRequests {
		dim, kind = "requests per min (RPM)", "requests"
	}
	const more = "Visit https://platform.openai.com/account/rate-limits to learn more."
	if d.tooLarge {
		s.rec.refused(now, id, "request_too_large", estimate)
		writeOpenAIError(w, http.StatusTooManyRequests, openAIError{
			Message: fmt.Sprintf("Request too large for %s in organization %s on %s: Limit %d, Requested %d. "+
				"The input or output tokens must be reduced in order to run successfully. %s",
				id.model, s.cfg.Organization, dim, d.limit, d.requested, more),
			Type: kind,
			Code: strPtr("rate_limit_exceeded"),
		})
		return
	}
	s.rec.refused(now, id, kind, estimate)
	setRetryAfter(w.Header(), d.retryAfter, true)
	writeOpenAIError(w, http.StatusTooManyRequests, openAIError{
		Message: fmt.Sprintf("Rate limit reached for %s in organization %s on %s: Limit %d, Used %d, Requested %d. "+
			"Please try again in %s. %s",
			id.model, s.cfg.Organization, dim, d.limit, d.used, d.requested, ceilTo(d.retryAfter, time.Millisecond), more),
		Type: kind,
		Code: strPtr("rate_limit_exceeded"),
	})
}

// setOpenAIHeaders sets x-ratelimit-* for the enforced buckets. Resets are the
// time until the bucket is full, rounded up to the millisecond, as Go durations.
func setOpenAIHeaders(h http.Header, st [numResources]bucketState) {
	for _, b := range []struct {
		r    resource
		name string
	}{{resRequests, "requests"}, {resTokens, "tokens"}} {
		s := st[b.r]
		if !s.present {
			continue
		}
		h.Set("x-ratelimit-limit-"+b.name, itoa(s.limit))
		h.Set("x-ratelimit-remaining-"+b.name, itoa(s.remaining))
		h.Set("x-ratelimit-reset-"+b.name, ceilTo(s.reset, time.Millisecond).String())
	}
}

// setRetryAfter sets retry-after in whole seconds, rounded up, and with ms also
// retry-after-ms, rounded up.
func setRetryAfter(h http.Header, d time.Duration, ms bool) {
	h.Set("retry-after", itoa(ceilSeconds(d)))
	if ms {
		h.Set("retry-after-ms", strconv.FormatInt(int64(ceilTo(d, time.Millisecond)/time.Millisecond), 10))
	}
}
