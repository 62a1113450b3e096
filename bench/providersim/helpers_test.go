package providersim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/quotad/quotad/internal/clock"
)

// simEnv is a simulator on a fake clock behind a real loopback listener.
type simEnv struct {
	sim   *Server
	clock *clock.Fake
	url   string
}

// newEnv starts a simulator for cfg. Without a Clock it gets a fake clock at t0;
// without a Latency it gets none.
func newEnv(t *testing.T, cfg Config) *simEnv {
	t.Helper()
	fake := clock.NewFake(t0)
	if cfg.Clock == nil {
		cfg.Clock = fake
	}
	if cfg.Latency == nil {
		cfg.Latency = &Latency{}
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return &simEnv{sim: sim, clock: fake, url: ts.URL}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to path with headers (name, value pairs).
func (e *simEnv) post(t *testing.T, path string, body any, headers ...string) response {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: out}
}

// chat posts a Chat Completions request for key with a prompt of promptChars
// characters.
func (e *simEnv) chat(t *testing.T, key string, promptChars, maxTokens int, extra map[string]any) response {
	t.Helper()
	body := map[string]any{
		"model":      "gpt-4o-mini",
		"messages":   []map[string]string{{"role": "user", "content": string(bytes.Repeat([]byte("x"), promptChars))}},
		"max_tokens": maxTokens,
	}
	for k, v := range extra {
		body[k] = v
	}
	return e.post(t, "/v1/chat/completions", body, "Authorization", "Bearer "+key)
}

// messages posts a Messages request for key.
func (e *simEnv) messages(t *testing.T, key string, promptChars, maxTokens int, extra map[string]any) response {
	t.Helper()
	body := map[string]any{
		"model":      "claude-sonnet-4-5",
		"messages":   []map[string]string{{"role": "user", "content": string(bytes.Repeat([]byte("x"), promptChars))}},
		"max_tokens": maxTokens,
	}
	for k, v := range extra {
		body[k] = v
	}
	return e.post(t, "/v1/messages", body, "x-api-key", key)
}

// wantHeaders fails unless every name, value pair is in h.
func wantHeaders(t *testing.T, h http.Header, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := h.Get(pairs[i]); got != pairs[i+1] {
			t.Errorf("%s = %q, want %q", pairs[i], got, pairs[i+1])
		}
	}
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

func decodeBody(res *http.Response, v any) error {
	return json.NewDecoder(res.Body).Decode(v)
}
