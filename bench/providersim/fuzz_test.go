package providersim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fuzzBody sends body to path and checks that the answer is a known status with
// a JSON body (or an event stream).
func fuzzBody(t *testing.T, sim *Server, path string, body []byte, header ...string) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set(header[0], header[1])
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, req)
	switch rec.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
	default:
		t.Fatalf("status %d for %q", rec.Code, body)
	}
	if rec.Header().Get("Content-Type") == "application/json" && !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("invalid JSON answer %q for %q", rec.Body.Bytes(), body)
	}
	if rec.Code == http.StatusBadRequest && !bytes.Contains(rec.Body.Bytes(), []byte(`"invalid_request_error"`)) {
		t.Fatalf("400 without an error type: %s", rec.Body.Bytes())
	}
}

func fuzzServer(f *testing.F) *Server {
	sim, err := New(Config{Latency: &Latency{}, MaxBodyBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	return sim
}

func FuzzChatBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"model":1}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"n":2}`,
		`{"model":"m","messages":[{"content":[{"type":"text","text":"x"}]}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","messages":[{"content":null}],"max_tokens":-1}`,
		`{"model":"m","messages":[{"content":"x"}],"max_tokens":99999999999999}`,
	} {
		f.Add([]byte(s))
	}
	sim := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, sim, "/v1/chat/completions", body, "Authorization", "Bearer fuzz")
	})
}

func FuzzMessagesBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `"x"`, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"system":"s","messages":[{"content":[{"type":"text"}]}],"stream":true}`,
		`{"model":"m","max_tokens":5,"system":5,"messages":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	sim := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, sim, "/v1/messages", body, "x-api-key", "fuzz")
	})
}

func FuzzResponsesBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"model":"m","input":"hi","max_output_tokens":4}`,
		`{"model":"m","instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"stream":true}`,
		`{"model":"m","input":5}`, `{"model":"m","input":[{"content":{}}]}`,
	} {
		f.Add([]byte(s))
	}
	sim := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, sim, "/v1/responses", body, "Authorization", "Bearer fuzz")
	})
}
