package quotad

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// fakeProvider answers every request with status, headers and body, and records
// the bodies it received.
type fakeProvider struct {
	status  int
	headers map[string]string
	body    string
	got     chan string
}

func (p *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.got <- string(b)
	for k, v := range p.headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(p.status)
	io.WriteString(w, p.body)
}

// transportEnv is a fake quotad and a fake provider, and an http.Client that
// reaches the provider through a Transport.
type transportEnv struct {
	quotad   *fakeServer
	provider *fakeProvider
	url      string
	http     *http.Client
}

func newTransportEnv(t *testing.T, status int, headers map[string]string, body string) *transportEnv {
	t.Helper()
	e := &transportEnv{quotad: newFakeServer(), provider: &fakeProvider{status: status, headers: headers, body: body, got: make(chan string, 10)}}
	c := dial(t, []string{serve(t, e.quotad)})
	srv := httptest.NewServer(e.provider)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.http = &http.Client{Transport: NewTransport(c, "pool", nil, WithTenant("svc"))}
	return e
}

// post sends body to path and returns the response body, read in small pieces.
func (e *transportEnv) post(t *testing.T, path, body string) (*http.Response, string) {
	t.Helper()
	resp, err := e.http.Post(e.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 7) // splits lines and JSON across reads
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return resp, sb.String()
}

// report returns the Report the fake quotad received.
func (e *transportEnv) report(t *testing.T) *quotadv1.ReportRequest {
	t.Helper()
	select {
	case r := <-e.quotad.reported:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no Report")
		return nil
	}
}

func TestTransportChatCompletion(t *testing.T) {
	e := newTransportEnv(t, 200, map[string]string{
		"Content-Type":                 "application/json",
		"X-Ratelimit-Remaining-Tokens": "149000",
		"X-Ratelimit-Limit-Tokens":     "150000",
		"Date":                         "Wed, 25 Nov 2026 10:00:00 GMT",
		"Openai-Processing-Ms":         "12",
		"X-Request-Id":                 "req-1",
	}, `{"id":"c1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":21,"completion_tokens":7,"total_tokens":28}}`)
	reqBody := `{"model":"gpt-4o-mini","n":2,"max_tokens":50,"max_completion_tokens":64,
		"messages":[{"role":"system","content":"Be brief."},
		{"role":"user","name":"ann","content":[{"type":"text","text":"Hello "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"there"}]},
		{"role":"assistant","content":null,"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}]}`
	_, body := e.post(t, "/v1/chat/completions", reqBody)
	if !strings.Contains(body, `"completion_tokens":7`) {
		t.Errorf("caller got %q", body)
	}
	if got := <-e.provider.got; got != reqBody {
		t.Errorf("provider got %q, want the request body unchanged", got)
	}

	acq := e.quotad.acquireRequests()[0]
	wantMsgs := []string{"system|Be brief.|", "user|Hello there|ann", `assistant|{"a":1}|`}
	var gotMsgs []string
	for _, m := range acq.GetPrompt().GetMessages() {
		gotMsgs = append(gotMsgs, m.GetRole()+"|"+m.GetContent()+"|"+m.GetName())
	}
	if acq.GetPool() != "pool" || acq.GetTenant() != "svc" || acq.GetModel() != "gpt-4o-mini" || acq.GetN() != 2 ||
		acq.MaxOutputTokens == nil || acq.GetMaxOutputTokens() != 64 || strings.Join(gotMsgs, ",") != strings.Join(wantMsgs, ",") ||
		acq.GetCost().GetRequests() != 1 || acq.GetRequestId() == "" {
		t.Errorf("acquire = %v", acq)
	}

	rep := e.report(t)
	want := map[string]string{"x-ratelimit-remaining-tokens": "149000", "x-ratelimit-limit-tokens": "150000", "date": "Wed, 25 Nov 2026 10:00:00 GMT"}
	if rep.GetOutcome() != quotadv1.Outcome_OUTCOME_SUCCESS || rep.GetUsage().GetInputTokens() != 21 || rep.GetUsage().GetOutputTokens() != 7 ||
		len(rep.GetHeaders()) != len(want) {
		t.Errorf("report = %v", rep)
	}
	for k, v := range want {
		if rep.GetHeaders()[k] != v {
			t.Errorf("reported header %s = %q, want %q", k, rep.GetHeaders()[k], v)
		}
	}
}

func TestTransportStreams(t *testing.T) {
	sse := func(events ...string) string { return "data: " + strings.Join(events, "\n\ndata: ") + "\n\n" }
	tests := []struct {
		name, path, request, response     string
		in, out, cacheCreation, cacheRead int64
	}{{
		name:    "openai chat",
		path:    "/v1/chat/completions",
		request: `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
		response: sse(`{"choices":[{"delta":{"content":"a"}}],"usage":null}`, `{"choices":[{"delta":{"content":"b"}}],"usage":null}`,
			`{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`, `[DONE]`),
		in: 9, out: 2,
	}, {
		name:    "openai responses",
		path:    "/v1/responses",
		request: `{"model":"gpt-4o","stream":true,"instructions":"sys","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]},{"type":"function_call_output","output":"42"}],"max_output_tokens":30}`,
		response: "event: response.created\n" + sse(`{"type":"response.created","response":{"usage":null}}`,
			`{"type":"response.output_text.delta","delta":"x"}`,
			`{"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":12,"output_tokens":5,"total_tokens":17}}}`),
		in: 12, out: 5,
	}, {
		name:    "anthropic",
		path:    "/v1/messages",
		request: `{"model":"claude-sonnet-4-5","stream":true,"max_tokens":100,"system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":[{"type":"tool_result","content":[{"type":"text","text":"res"}]}]}]}`,
		response: "event: message_start\r\n" + strings.ReplaceAll(sse(
			`{"type":"message_start","message":{"usage":{"input_tokens":30,"cache_creation_input_tokens":4,"cache_read_input_tokens":100,"output_tokens":1}}}`,
			`{"type":"content_block_delta","delta":{"type":"text_delta","text":"usage"}}`,
			`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":17}}`,
			`{"type":"message_stop"}`), "\n", "\r\n"),
		in: 30, out: 17, cacheCreation: 4, cacheRead: 100,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTransportEnv(t, 200, map[string]string{"Content-Type": "text/event-stream; charset=utf-8"}, tt.response)
			_, body := e.post(t, tt.path, tt.request)
			if body != tt.response {
				t.Errorf("caller got %q, want the stream unchanged", body)
			}
			rep := e.report(t)
			u := rep.GetUsage()
			if rep.GetOutcome() != quotadv1.Outcome_OUTCOME_SUCCESS || u.GetInputTokens() != tt.in || u.GetOutputTokens() != tt.out ||
				u.GetCacheCreationInputTokens() != tt.cacheCreation || u.GetCacheReadInputTokens() != tt.cacheRead {
				t.Errorf("report = %v", rep)
			}
		})
	}
}

func TestTransportStreamReportsWhenClosed(t *testing.T) {
	e := newTransportEnv(t, 200, map[string]string{"Content-Type": "text/event-stream"},
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\n\n"+
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n")
	e.quotad.acquireFn = func(_ context.Context, req *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
		return &quotadv1.AcquireResponse{Granted: true, GrantId: "g1", LeaseTtl: durationpb.New(time.Minute),
			Cost: &quotadv1.Cost{Requests: 1, InputTokens: 40, OutputTokens: 100}}, nil
	}
	resp, err := e.http.Post(e.url+"/v1/messages", "application/json", strings.NewReader(`{"model":"claude-x","max_tokens":100,"stream":true,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 150) // past the message_start event
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-e.quotad.reported:
		t.Fatalf("reported before the stream ended: %v", r)
	case <-time.After(50 * time.Millisecond):
	}
	resp.Body.Close()
	// The input is known from message_start; the output is not, so the estimate stands.
	rep := e.report(t)
	if rep.GetOutcome() != quotadv1.Outcome_OUTCOME_SUCCESS || rep.GetUsage().GetInputTokens() != 30 || rep.GetUsage().GetOutputTokens() != 100 {
		t.Errorf("report = %v", rep)
	}
}

func TestTransportErrorsAreReported(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		headers    map[string]string
		body       string
		outcome    quotadv1.Outcome
		retryAfter time.Duration
		provErr    string
	}{
		{"openai 429", 429, map[string]string{"Retry-After": "3", "Retry-After-Ms": "2500", "X-Ratelimit-Remaining-Tokens": "0"},
			`{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}`,
			quotadv1.Outcome_OUTCOME_RATE_LIMITED, 2500 * time.Millisecond, "rate_limit_exceeded"},
		{"insufficient quota", 429, nil, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`,
			quotadv1.Outcome_OUTCOME_RATE_LIMITED, 0, "insufficient_quota"},
		{"anthropic 429 date", 429, map[string]string{"Retry-After": "Wed, 25 Nov 2026 10:00:04 GMT", "Date": "Wed, 25 Nov 2026 10:00:00 GMT"},
			`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`,
			quotadv1.Outcome_OUTCOME_RATE_LIMITED, 4 * time.Second, "rate_limit_error"},
		{"overloaded", 529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			quotadv1.Outcome_OUTCOME_FAILED, 0, "overloaded_error"},
		{"not json", 500, nil, `oops`, quotadv1.Outcome_OUTCOME_FAILED, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTransportEnv(t, tt.status, tt.headers, tt.body)
			resp, body := e.post(t, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != tt.status || body != tt.body {
				t.Errorf("caller got %d %q", resp.StatusCode, body)
			}
			rep := e.report(t)
			if rep.GetOutcome() != tt.outcome || rep.GetRetryAfter().AsDuration() != tt.retryAfter || rep.GetProviderError() != tt.provErr ||
				rep.GetUsage().GetInputTokens() != 0 || rep.GetUsage().GetOutputTokens() != 0 {
				t.Errorf("report = %v", rep)
			}
		})
	}
}

func TestTransportNotSent(t *testing.T) {
	e := newTransportEnv(t, 200, nil, "")
	_, err := e.http.Post("http://"+deadAddr(t)+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
	if err == nil {
		t.Fatal("post to a dead address succeeded")
	}
	if rep := e.report(t); rep.GetOutcome() != quotadv1.Outcome_OUTCOME_NOT_SENT {
		t.Errorf("report = %v", rep)
	}
}

func TestTransportPassesThrough(t *testing.T) {
	tests := []struct{ name, method, path, body string }{
		{"unknown path", "POST", "/v1/files", `{"model":"gpt-4o"}`},
		{"GET", "GET", "/v1/chat/completions", ``},
		{"not JSON", "POST", "/v1/chat/completions", `model=gpt-4o`},
		{"no model", "POST", "/v1/threads/t1/messages", `{"role":"user","content":"hi"}`},
		{"wrong type", "POST", "/v1/chat/completions", `{"model":"gpt-4o","n":"two"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTransportEnv(t, 200, map[string]string{"Content-Type": "application/json"}, `{"usage":{"prompt_tokens":1}}`)
			req, _ := http.NewRequest(tt.method, e.url+tt.path, strings.NewReader(tt.body))
			resp, err := e.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := <-e.provider.got; got != tt.body {
				t.Errorf("provider got %q, want %q", got, tt.body)
			}
			if acquires, reports, _ := e.quotad.counts(); acquires != 0 || reports != 0 {
				t.Errorf("%d acquires and %d reports, want none", acquires, reports)
			}
		})
	}
}

func TestTransportAcquireRefused(t *testing.T) {
	e := newTransportEnv(t, 200, nil, "")
	e.quotad.acquireFn = func(context.Context, *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
		return &quotadv1.AcquireResponse{RetryAfter: durationpb.New(time.Second)}, nil
	}
	_, err := e.http.Post(e.url+"/v1/messages", "application/json", strings.NewReader(`{"model":"claude-x","max_tokens":10,"messages":[]}`))
	var ng *NotGrantedError
	if !errors.As(err, &ng) || ng.RetryAfter != time.Second {
		t.Fatalf("error = %v, want a NotGrantedError", err)
	}
	select {
	case got := <-e.provider.got:
		t.Errorf("provider got %q", got)
	default:
	}
}

func TestParseCall(t *testing.T) {
	tests := []struct {
		name, path, body string
		want             providerCall
	}{{
		name: "anthropic",
		path: "/v1/messages",
		body: `{"model":"claude-x","max_tokens":300,"system":"sys","messages":[{"role":"user","content":"hi"}]}`,
		want: providerCall{api: apiMessages, model: "claude-x", maxOutput: 300, hasMaxOutput: true,
			messages: []Message{{Role: "system", Content: "sys"}, {Role: "user", Content: "hi"}}},
	}, {
		name: "responses text input",
		path: "/api/openai/v1/responses",
		body: `{"model":"gpt-5","input":"hello"}`,
		want: providerCall{api: apiResponses, model: "gpt-5", messages: []Message{{Role: "user", Content: "hello"}}},
	}, {
		name: "chat max_tokens",
		path: "/v1/chat/completions/",
		body: `{"model":"gpt-4o","max_tokens":20,"messages":[]}`,
		want: providerCall{api: apiChat, model: "gpt-4o", maxOutput: 20, hasMaxOutput: true, messages: []Message{}},
	}, {
		name: "azure deployment",
		path: "/openai/deployments/prod-4o/chat/completions",
		body: `{"messages":[{"role":"user","content":"hi"}]}`,
		want: providerCall{api: apiChat, model: "prod-4o", messages: []Message{{Role: "user", Content: "hi"}}},
	}, {
		name: "embeddings strings",
		path: "/v1/embeddings",
		body: `{"model":"text-embedding-3-small","input":["a","b"]}`,
		want: providerCall{api: apiEmbeddings, model: "text-embedding-3-small", text: "a\nb", isText: true, hasMaxOutput: true},
	}, {
		name: "embeddings token ids",
		path: "/v1/embeddings",
		body: `{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}`,
		want: providerCall{api: apiEmbeddings, model: "text-embedding-3-small", inputTokens: 4, hasMaxOutput: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCall(routeOf(tt.path), tt.path, []byte(tt.body))
			if !ok {
				t.Fatal("not understood")
			}
			if got.api != tt.want.api || got.model != tt.want.model || got.text != tt.want.text || got.isText != tt.want.isText ||
				got.inputTokens != tt.want.inputTokens || got.maxOutput != tt.want.maxOutput || got.hasMaxOutput != tt.want.hasMaxOutput ||
				len(got.messages) != len(tt.want.messages) || (got.messages == nil) != (tt.want.messages == nil) {
				t.Fatalf("call = %+v, want %+v", *got, tt.want)
			}
			for i := range got.messages {
				if got.messages[i] != tt.want.messages[i] {
					t.Errorf("message %d = %+v, want %+v", i, got.messages[i], tt.want.messages[i])
				}
			}
		})
	}
}

func TestAcquireWithPrompt(t *testing.T) {
	srv := newFakeServer()
	c := dial(t, []string{serve(t, srv)})
	ctx := testContext(t)
	if _, err := c.Acquire(ctx, "p", Cost{}, WithPromptText("gpt-4o", "hello"), WithMaxOutputTokens(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(ctx, "p", Cost{}, WithPrompt("gpt-4o", Message{Role: "user", Content: "hi"}), WithCompletions(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(ctx, "p", Cost{}, WithMaxOutputTokens(-1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative max output: %v, want ErrInvalid", err)
	}
	reqs := srv.acquireRequests()
	if r := reqs[0]; r.GetPrompt().GetText() != "hello" || r.GetModel() != "gpt-4o" || r.MaxOutputTokens == nil || r.GetMaxOutputTokens() != 0 {
		t.Errorf("text acquire = %v", r)
	}
	if r := reqs[1]; len(r.GetPrompt().GetMessages()) != 1 || r.GetN() != 3 || r.MaxOutputTokens != nil {
		t.Errorf("messages acquire = %v", r)
	}
}
