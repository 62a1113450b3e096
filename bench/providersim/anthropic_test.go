package providersim

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func anthropicConfig() Config {
	return Config{
		Default: Limits{Period: time.Minute, Requests: Rate{Limit: 50},
			InputTokens: Rate{Limit: 30_000}, OutputTokens: Rate{Limit: 8_000}},
		Output: Output{MinFraction: 1, MaxFraction: 1},
	}
}

func TestMessagesHeaders(t *testing.T) {
	e := newEnv(t, anthropicConfig())
	e.clock.Advance(300 * time.Millisecond)
	res := e.messages(t, "k", 4000, 1000, nil) // 1000 input, 1000 output reserved
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	wantHeaders(t, res.header,
		"anthropic-ratelimit-requests-limit", "50",
		"anthropic-ratelimit-requests-remaining", "49",
		"anthropic-ratelimit-requests-reset", "2026-01-01T00:00:02Z", // 0.3s + 1.2s, rounded up
		"anthropic-ratelimit-input-tokens-limit", "30000",
		"anthropic-ratelimit-input-tokens-remaining", "29000",
		"anthropic-ratelimit-input-tokens-reset", "2026-01-01T00:00:03Z", // 0.3s + 2s
		"anthropic-ratelimit-output-tokens-limit", "8000",
		"anthropic-ratelimit-output-tokens-remaining", "7000",
		"anthropic-ratelimit-output-tokens-reset", "2026-01-01T00:00:08Z", // 0.3s + 7.5s
		"anthropic-ratelimit-tokens-limit", "8000",
		"anthropic-ratelimit-tokens-remaining", "7000",
		"anthropic-ratelimit-tokens-reset", "2026-01-01T00:00:08Z",
		"x-ratelimit-limit-requests", "")
	m := decode[messageBody](t, res.body)
	want := messageUsage{InputTokens: 1000, OutputTokens: 1000}
	if m.Type != "message" || m.Role != "assistant" || m.Usage != want || *m.StopReason != "max_tokens" ||
		len(m.Content) != 1 || len(strings.Fields(m.Content[0].Text)) != 1000 {
		t.Fatalf("message %+v", m)
	}
}

func TestMessagesRemainingRoundsToNearestThousand(t *testing.T) {
	e := newEnv(t, anthropicConfig())
	for _, c := range []struct {
		key   string
		chars int
		want  string
	}{
		{"a", 1804, "30000"}, // 451 tokens: 29549 remaining
		{"b", 2000, "30000"}, // 500: 29500 rounds half up
		{"c", 2008, "29000"}, // 502: 29498
	} {
		res := e.messages(t, c.key, c.chars, 1, nil)
		wantHeaders(t, res.header, "anthropic-ratelimit-input-tokens-remaining", c.want)
	}
}

func TestMessagesRefusedOnOutputTokensAndSettled(t *testing.T) {
	cfg := anthropicConfig()
	cfg.Output = Output{MinFraction: 0.5, MaxFraction: 0.5}
	e := newEnv(t, cfg)
	res := e.messages(t, "k", 4, 2000, nil) // reserves 2000 output, uses 1000
	if m := decode[messageBody](t, res.body); m.Usage.OutputTokens != 1000 || *m.StopReason != "end_turn" {
		t.Fatalf("message %+v", m)
	}
	res = e.messages(t, "k", 4, 2000, nil) // 8000 - 1000 - 2000
	wantHeaders(t, res.header, "anthropic-ratelimit-output-tokens-remaining", "5000")
	// 6000 left after settlement
	res = e.messages(t, "k", 4, 7000, nil)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", res.status)
	}
	wantHeaders(t, res.header, "retry-after", "8", "retry-after-ms", "") // 1000 tokens at 8000/min: 7.5s
	body := decode[map[string]any](t, res.body)
	errObj, _ := body["error"].(map[string]any)
	if body["type"] != "error" || errObj["type"] != "rate_limit_error" ||
		!strings.Contains(errObj["message"].(string), "(org-sim) of 8,000 output tokens per minute") {
		t.Fatalf("body %s", res.body)
	}
	if n := e.sim.Stats().Totals.Refused["output_tokens"]; n != 1 {
		t.Fatalf("refused output_tokens = %d", n)
	}
	res = e.messages(t, "k", 4, 9000, nil)
	if res.status != http.StatusTooManyRequests || res.header.Get("retry-after") != "" {
		t.Fatalf("too large: status %d retry-after %q", res.status, res.header.Get("retry-after"))
	}
}

func TestMessagesStream(t *testing.T) {
	e := newEnv(t, anthropicConfig())
	res := e.messages(t, "k", 40, 20, map[string]any{"stream": true,
		"system": []map[string]string{{"type": "text", "text": "abcd"}}})
	var events []string
	var datas []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(res.body))
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, ev)
		}
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			datas = append(datas, decode[map[string]any](t, []byte(d)))
		}
	}
	got := strings.Join(events, ",")
	want := "message_start,content_block_start," + strings.Repeat("content_block_delta,", 3) +
		"content_block_stop,message_delta,message_stop"
	if got != want {
		t.Fatalf("events %s\nwant   %s", got, want)
	}
	start := datas[0]["message"].(map[string]any)["usage"].(map[string]any)
	delta := datas[len(datas)-2]["usage"].(map[string]any)
	if start["input_tokens"] != 11.0 || delta["output_tokens"] != 20.0 {
		t.Fatalf("usage: start %v, delta %v", start, delta)
	}
}

func TestMessagesBadRequests(t *testing.T) {
	e := newEnv(t, anthropicConfig())
	for _, c := range []struct{ name, body, key string }{
		{"garbage", `[1,2`, "k"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "k"},
		{"bad system", `{"model":"m","max_tokens":5,"system":{},"messages":[{"role":"user","content":"x"}]}`, "k"},
		{"no key", `{}`, ""},
	} {
		res := e.post(t, "/v1/messages", c.body, "x-api-key", c.key)
		body := decode[map[string]any](t, res.body)
		errObj, _ := body["error"].(map[string]any)
		if res.status/100 != 4 || body["type"] != "error" || errObj["message"] == "" {
			t.Errorf("%s: status %d body %s", c.name, res.status, res.body)
		}
	}
}

func TestAnthropicKeyAsBearerToken(t *testing.T) {
	e := newEnv(t, Config{Latency: &Latency{}})
	res := e.post(t, "/v1/messages", `{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "Authorization", "Bearer k1")
	if res.status != 200 {
		t.Fatalf("status %d with the key as a bearer token, want 200: %s", res.status, res.body)
	}
}
