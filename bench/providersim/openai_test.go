package providersim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func openAIConfig(requests, tokens int64) Config {
	return Config{
		Default: Limits{Period: time.Minute, Requests: Rate{Limit: requests}, Tokens: Rate{Limit: tokens}},
		Output:  Output{MinFraction: 1, MaxFraction: 1},
	}
}

func TestChatAdmissionChargesPromptEstimatePlusCap(t *testing.T) {
	e := newEnv(t, openAIConfig(60, 6000)) // 1 request and 100 tokens per second
	res := e.chat(t, "k", 40, 90, nil)     // 10 prompt tokens + 90
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	wantHeaders(t, res.header,
		"x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "59", "x-ratelimit-reset-requests", "1s",
		"x-ratelimit-limit-tokens", "6000", "x-ratelimit-remaining-tokens", "5900", "x-ratelimit-reset-tokens", "1s")
	body := decode[chatBody](t, res.body)
	if body.Object != "chat.completion" || len(body.Choices) != 1 || *body.Choices[0].FinishReason != "length" {
		t.Fatalf("unexpected completion %s", res.body)
	}
	if u := *body.Usage; u != (chatUsage{PromptTokens: 10, CompletionTokens: 90, TotalTokens: 100}) {
		t.Fatalf("usage %+v", u)
	}
	if got := len(strings.Fields(*body.Choices[0].Message.Content)); got != 90 {
		t.Fatalf("content has %d words, want one per completion token (90)", got)
	}

	e.clock.Advance(250 * time.Millisecond) // +25 tokens, +0.25 requests
	res = e.chat(t, "k", 40, 90, nil)
	wantHeaders(t, res.header,
		"x-ratelimit-remaining-requests", "58", "x-ratelimit-reset-requests", "1.75s",
		"x-ratelimit-remaining-tokens", "5825", "x-ratelimit-reset-tokens", "1.75s")
}

func TestChatSettlementRefundsUnusedOutput(t *testing.T) {
	cfg := openAIConfig(600, 6000)
	cfg.Output = Output{MinFraction: 0.5, MaxFraction: 0.5}
	e := newEnv(t, cfg)
	res := e.chat(t, "k", 40, 90, nil) // charge 100, actual 10 + 45
	wantHeaders(t, res.header, "x-ratelimit-remaining-tokens", "5900")
	if u := *decode[chatBody](t, res.body).Usage; u.CompletionTokens != 45 || u.TotalTokens != 55 {
		t.Fatalf("usage %+v, want 45 completion tokens", u)
	}
	res = e.chat(t, "k", 40, 90, nil) // 6000 - 55 - 100
	wantHeaders(t, res.header, "x-ratelimit-remaining-tokens", "5845", "x-ratelimit-reset-tokens", "1.55s")
}

func TestChatRefusedOnTokens(t *testing.T) {
	e := newEnv(t, openAIConfig(100, 1000))
	if res := e.chat(t, "k", 400, 500, nil); res.status != http.StatusOK { // 100 + 500
		t.Fatalf("first: status %d", res.status)
	}
	res := e.chat(t, "k", 400, 500, nil)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("second: status %d, want 429", res.status)
	}
	wantHeaders(t, res.header, "retry-after", "12", "retry-after-ms", "12000",
		"x-ratelimit-remaining-tokens", "400", "x-ratelimit-reset-tokens", "36s")
	got := decode[map[string]openAIError](t, res.body)["error"]
	want := "Rate limit reached for gpt-4o-mini in organization org-sim on tokens per min (TPM): " +
		"Limit 1000, Used 600, Requested 600. Please try again in 12s. " +
		"Visit https://platform.openai.com/account/rate-limits to learn more."
	if got.Message != want || got.Type != "tokens" || *got.Code != "rate_limit_exceeded" || got.Param != nil {
		t.Fatalf("error %+v\nwant message %q", got, want)
	}

	e.clock.Advance(12*time.Second - time.Millisecond)
	res = e.chat(t, "k", 400, 500, nil)
	wantHeaders(t, res.header, "retry-after", "1", "retry-after-ms", "1")
	if !strings.Contains(string(res.body), "Used 401, Requested 600. Please try again in 1ms.") {
		t.Fatalf("1ms early: %s", res.body)
	}
	e.clock.Advance(time.Millisecond)
	if res := e.chat(t, "k", 400, 500, nil); res.status != http.StatusOK {
		t.Fatalf("on time: status %d: %s", res.status, res.body)
	}
}

func TestChatRefusedOnRequests(t *testing.T) {
	e := newEnv(t, openAIConfig(2, 100_000))
	e.chat(t, "k", 4, 10, nil)
	e.chat(t, "k", 4, 10, nil)
	res := e.chat(t, "k", 4, 10, nil)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", res.status)
	}
	wantHeaders(t, res.header, "retry-after", "30", "retry-after-ms", "30000",
		"x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "1m0s")
	got := decode[map[string]openAIError](t, res.body)["error"]
	if got.Type != "requests" || !strings.HasPrefix(got.Message,
		"Rate limit reached for gpt-4o-mini in organization org-sim on requests per min (RPM): Limit 2, Used 2, Requested 1. Please try again in 30s.") {
		t.Fatalf("error %+v", got)
	}
	if st := e.sim.Stats().Totals; st.Refused["requests"] != 1 || st.AdmittedRequests != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestChatRequestTooLarge(t *testing.T) {
	e := newEnv(t, openAIConfig(100, 1000))
	res := e.chat(t, "k", 4000, 10, nil)
	if res.status != http.StatusTooManyRequests || res.header.Get("retry-after") != "" {
		t.Fatalf("status %d retry-after %q, want 429 without retry-after", res.status, res.header.Get("retry-after"))
	}
	got := decode[map[string]openAIError](t, res.body)["error"]
	if !strings.HasPrefix(got.Message, "Request too large for gpt-4o-mini in organization org-sim on tokens per min (TPM): Limit 1000, Requested 1010.") {
		t.Fatalf("message %q", got.Message)
	}
	wantHeaders(t, res.header, "x-ratelimit-remaining-tokens", "1000")
	if n := e.sim.Stats().Totals.Refused["request_too_large"]; n != 1 {
		t.Fatalf("request_too_large count %d", n)
	}
}

func TestChatOutputCaps(t *testing.T) {
	e := newEnv(t, Config{Default: Limits{Tokens: Rate{Limit: 100_000}}, DefaultMaxTokens: 300,
		Output: Output{MinFraction: 1, MaxFraction: 1}})
	// max_completion_tokens wins over max_tokens and is reserved per choice.
	res := e.chat(t, "k", 8, 50, map[string]any{"max_completion_tokens": 10, "n": 3})
	wantHeaders(t, res.header, "x-ratelimit-remaining-tokens", itoa(100_000-2-30), "x-ratelimit-limit-requests", "")
	if u := *decode[chatBody](t, res.body).Usage; u.CompletionTokens != 30 {
		t.Fatalf("usage %+v, want 3 choices of 10", u)
	}
	// Without a cap the default is reserved.
	res = e.post(t, "/v1/chat/completions",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url"}]}]}`,
		"Authorization", "Bearer k2")
	wantHeaders(t, res.header, "x-ratelimit-remaining-tokens", itoa(100_000-1-300))
}

func TestChatPoolsOverrideDefault(t *testing.T) {
	cfg := openAIConfig(100, 100_000)
	cfg.Pools = map[Pool]Limits{
		{APIKey: "small"}:                       {Requests: Rate{Limit: 1}},
		{APIKey: "small", Model: "gpt-4o-mini"}: {Requests: Rate{Limit: 5, Burst: 2}, Tokens: Rate{Limit: 50}},
	}
	e := newEnv(t, cfg)
	wantHeaders(t, e.chat(t, "other", 4, 1, nil).header, "x-ratelimit-limit-requests", "100")
	wantHeaders(t, e.chat(t, "small", 4, 1, nil).header,
		"x-ratelimit-limit-requests", "5", "x-ratelimit-remaining-requests", "1", "x-ratelimit-limit-tokens", "50")
	res := e.post(t, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		"Authorization", "Bearer small")
	wantHeaders(t, res.header, "x-ratelimit-limit-requests", "1", "x-ratelimit-remaining-requests", "0",
		"x-ratelimit-limit-tokens", "")
}

func TestChatInsufficientQuota(t *testing.T) {
	cfg := openAIConfig(100, 1000)
	cfg.QuotaExhaustedKeys = []string{"broke"}
	e := newEnv(t, cfg)
	res := e.chat(t, "broke", 4, 1, nil)
	got := decode[map[string]openAIError](t, res.body)["error"]
	if res.status != http.StatusTooManyRequests || got.Type != "insufficient_quota" || res.header.Get("retry-after") != "" {
		t.Fatalf("status %d error %+v", res.status, got)
	}
}

func TestChatStreamWithUsage(t *testing.T) {
	e := newEnv(t, openAIConfig(100, 100_000))
	res := e.chat(t, "k", 12, 20, map[string]any{"stream": true, "stream_options": map[string]bool{"include_usage": true}})
	if ct := res.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var datas []string
	sc := bufio.NewScanner(bytes.NewReader(res.body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			datas = append(datas, d)
		}
	}
	if len(datas) < 4 || datas[len(datas)-1] != "[DONE]" {
		t.Fatalf("stream %s", res.body)
	}
	var content strings.Builder
	for _, d := range datas[:len(datas)-2] {
		c := decode[chatBody](t, []byte(d))
		if c.Object != "chat.completion.chunk" || len(c.Choices) != 1 || c.Usage != nil {
			t.Fatalf("chunk %s", d)
		}
		if p := c.Choices[0].Delta.Content; p != nil {
			content.WriteString(*p)
		}
	}
	last := decode[chatBody](t, []byte(datas[len(datas)-2]))
	if len(last.Choices) != 0 || last.Usage == nil || last.Usage.PromptTokens != 3 || last.Usage.CompletionTokens != 20 {
		t.Fatalf("usage chunk %s", datas[len(datas)-2])
	}
	if n := len(strings.Fields(content.String())); n != 20 {
		t.Fatalf("streamed %d words, want 20", n)
	}
}

func TestChatBadRequests(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 1000})
	cases := []struct {
		name, body, auth string
		status           int
	}{
		{"no key", `{}`, "", http.StatusUnauthorized},
		{"garbage", `{"model":`, "Bearer k", http.StatusBadRequest},
		{"no messages", `{"model":"m","messages":[]}`, "Bearer k", http.StatusBadRequest},
		{"bad content", `{"model":"m","messages":[{"role":"user","content":7}]}`, "Bearer k", http.StatusBadRequest},
		{"zero max_tokens", `{"model":"m","messages":[{"content":"x"}],"max_tokens":0}`, "Bearer k", http.StatusBadRequest},
		{"n too big", `{"model":"m","messages":[{"content":"x"}],"n":1000}`, "Bearer k", http.StatusBadRequest},
		{"too big", `{"model":"m","messages":[{"content":"` + strings.Repeat("x", 2000) + `"}]}`, "Bearer k", http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		res := e.post(t, "/v1/chat/completions", c.body, "Authorization", c.auth)
		var body map[string]openAIError
		if res.status != c.status || json.Unmarshal(res.body, &body) != nil || body["error"].Message == "" {
			t.Errorf("%s: status %d body %s, want %d with an error body", c.name, res.status, res.body, c.status)
		}
	}
	if st := e.sim.Stats().Totals; st.AdmittedRequests != 0 || st.RefusedRequests != 0 {
		t.Fatalf("bad requests were recorded: %+v", st)
	}
}
