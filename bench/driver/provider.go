package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// provider sends Chat Completions requests to the simulator.
type provider struct {
	url    string
	apiKey string
	model  string
	http   *http.Client
}

// response is the outcome of one request that got an HTTP answer.
type response struct {
	status       int
	header       http.Header
	inputTokens  int64  // usage.prompt_tokens of a success
	outputTokens int64  // usage.completion_tokens of a success
	errMessage   string // error.message of a failure
}

// rateLimited reports whether the provider answered 429.
func (r response) rateLimited() bool { return r.status == http.StatusTooManyRequests }

// send posts c and reads the answer. A transport error or an unreadable body
// is an error; any HTTP status is a response.
func (p *provider) send(ctx context.Context, c Call) (response, error) {
	body, err := c.body(p.model)
	if err != nil {
		return response{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return response{}, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("calling the provider: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("reading the provider's answer: %w", err)
	}
	out := response{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(data, &e) // the message is only kept for the record
		out.errMessage = e.Error.Message
		return out, nil
	}
	var completion struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &completion); err != nil {
		return out, fmt.Errorf("decoding the completion: %w", err)
	}
	out.inputTokens, out.outputTokens = completion.Usage.PromptTokens, completion.Usage.CompletionTokens
	return out, nil
}

// maxRetryAfter is the longest retry-after the SDKs honour; beyond it they use
// their own backoff.
const maxRetryAfter = 60 * time.Second

// retryAfter returns the provider's retry-after, read as the OpenAI SDKs do:
// retry-after-ms (milliseconds), else retry-after (seconds), and ok only when
// it is within (0, 60 s].
func retryAfter(h http.Header) (time.Duration, bool) {
	if v, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil {
		if d := time.Duration(v * float64(time.Millisecond)); d > 0 && d <= maxRetryAfter {
			return d, true
		}
	}
	if v, err := strconv.ParseFloat(h.Get("retry-after"), 64); err == nil {
		if d := time.Duration(v * float64(time.Second)); d > 0 && d <= maxRetryAfter {
			return d, true
		}
	}
	return 0, false
}
