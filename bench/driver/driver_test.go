package driver

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/quotad/quotad/bench/providersim"
)

// The cost a quotad-mode service asks for is exactly what the simulator
// charges at admission, and the usage it reads is what the simulator settles.
func TestEstimateMatchesSimulator(t *testing.T) {
	sim, err := providersim.New(providersim.Config{Latency: &providersim.Latency{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	p := &provider{url: srv.URL + "/v1/chat/completions", apiKey: "k", model: "m", http: srv.Client()}
	w := Standard().Workload
	w.LongFraction = 0.5
	var wantIn, wantOut, gotIn, gotOut int64
	for _, c := range w.calls(7, 1, 2, 20) {
		resp, err := p.send(context.Background(), c)
		if err != nil || resp.status != http.StatusOK {
			t.Fatalf("send: %v, status %d", err, resp.status)
		}
		if resp.inputTokens != c.InputTokens() {
			t.Errorf("prompt_tokens %d, estimate %d (%d chars)", resp.inputTokens, c.InputTokens(), c.Chars)
		}
		if resp.outputTokens < 1 || resp.outputTokens > c.MaxTokens {
			t.Errorf("completion_tokens %d outside 1..%d", resp.outputTokens, c.MaxTokens)
		}
		wantIn, wantOut = wantIn+c.InputTokens(), wantOut+c.MaxTokens
		gotIn, gotOut = gotIn+resp.inputTokens, gotOut+resp.outputTokens
	}
	tot := sim.Stats().Totals
	if tot.AdmittedInputTokens != wantIn || tot.AdmittedOutputTokens != wantOut {
		t.Errorf("simulator charged %d+%d at admission, the estimates sum to %d+%d",
			tot.AdmittedInputTokens, tot.AdmittedOutputTokens, wantIn, wantOut)
	}
	if tot.SettledInputTokens != gotIn || tot.SettledOutputTokens != gotOut {
		t.Errorf("simulator settled %d+%d, the responses say %d+%d",
			tot.SettledInputTokens, tot.SettledOutputTokens, gotIn, gotOut)
	}
}

func TestWorkloadIsSeeded(t *testing.T) {
	w := Standard().Workload
	a, b := w.calls(1, 3, 4, 50), w.calls(1, 3, 4, 50)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed, service and task gave different calls")
	}
	if slices.Equal(a, w.calls(1, 3, 5, 50)) {
		t.Fatal("two tasks got the same calls")
	}
	for _, c := range a {
		r := w.ShortChars
		if c.Long {
			r = w.LongChars
		}
		if c.Chars < r[0] || c.Chars > r[1] || c.MaxTokens < int64(w.MaxTokens[0]) || c.MaxTokens > int64(w.MaxTokens[1]) {
			t.Errorf("call %+v outside the workload's ranges", c)
		}
		body, err := c.body("m")
		if err != nil {
			t.Fatal(err)
		}
		var req chatRequest
		if err := json.Unmarshal(body, &req); err != nil || len(req.Messages[1].Content) != c.Chars {
			t.Errorf("user message of %d chars, want %d (%v)", len(req.Messages[1].Content), c.Chars, err)
		}
	}
}

func TestSDKRetryDelay(t *testing.T) {
	var s SDKRetry
	tests := []struct {
		n      int
		ra     time.Duration
		ok     bool
		jitter float64
		want   time.Duration
	}{
		{0, 1234 * time.Millisecond, true, 0.9, 1234 * time.Millisecond}, // retry-after wins
		{0, 0, false, 0, 500 * time.Millisecond},
		{1, 0, false, 0, time.Second},
		{2, 0, false, 1, 1500 * time.Millisecond}, // 2 s less a quarter
		{6, 0, false, 0, 8 * time.Second},         // capped
		{100, 0, false, 0, 8 * time.Second},
	}
	for _, tt := range tests {
		if got := s.Delay(tt.n, tt.ra, tt.ok, tt.jitter); got != tt.want {
			t.Errorf("Delay(%d, %v, %v, %v) = %v, want %v", tt.n, tt.ra, tt.ok, tt.jitter, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		ms, s string
		want  time.Duration
		ok    bool
	}{
		{"1500", "2", 1500 * time.Millisecond, true},
		{"", "2", 2 * time.Second, true},
		{"", "61", 0, false}, // beyond what the SDKs honour
		{"0", "0", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.ms != "" {
			h.Set("retry-after-ms", tt.ms)
		}
		if tt.s != "" {
			h.Set("retry-after", tt.s)
		}
		if got, ok := retryAfter(h); got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(ms=%q, s=%q) = %v, %v; want %v, %v", tt.ms, tt.s, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJainAndPercentile(t *testing.T) {
	if got := jain([]float64{5, 5, 5, 5}); got != 1 {
		t.Errorf("equal shares: %v, want 1", got)
	}
	if got := jain([]float64{8, 0, 0, 0}); got != 0.25 {
		t.Errorf("one takes all: %v, want 1/4", got)
	}
	if got := jain([]float64{1, 3}); math.Abs(got-0.8) > 1e-12 {
		t.Errorf("1, 3: %v, want 0.8", got)
	}
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	if p50, p99 := percentile(ds, 0.5), percentile(ds, 0.99); p50 != 50 || p99 != 99 {
		t.Errorf("p50, p99 of 1..100 = %v, %v", p50, p99)
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestSteadyWindowAndUtilization(t *testing.T) {
	sc := Scenario{Period: time.Minute, Requests: 600, Tokens: 60_000}
	series := []providersim.Second{
		{Second: 0, AdmittedRequests: 50, CompletedRequests: 40, SettledInputTokens: 9000},
		{Second: 2, AdmittedRequests: 10, CompletedRequests: 10, SettledInputTokens: 500, SettledOutputTokens: 500},
		{Second: 3, AdmittedRequests: 10, CompletedRequests: 5, SettledInputTokens: 1000},
		{Second: 4, AdmittedRequests: 1, CompletedRequests: 20, SettledInputTokens: 9000},
		{Second: 5, CompletedRequests: 1, SettledOutputTokens: 700},
	}
	start, end := steadyWindow(series, 1500*time.Millisecond)
	if start != 2 || end != 4 {
		t.Fatalf("window [%d, %d), want [2, 4)", start, end)
	}
	req, tok := utilization(sc, series, start, end)
	// 2 s allow 20 requests and 2000 tokens.
	if req != 0.75 || tok != 1 {
		t.Errorf("utilization %v requests, %v tokens; want 0.75, 1", req, tok)
	}
}

func TestJobUtilization(t *testing.T) {
	sc := Scenario{Period: time.Minute, Requests: 600, Tokens: 60_000}
	// 30 s: a full bucket plus half of one refill = 900 requests, 90,000 tokens.
	tot := providersim.Totals{CompletedRequests: 450, SettledInputTokens: 60_000, SettledOutputTokens: 12_000}
	if got := jobUtilization(sc, tot, 30*time.Second); math.Abs(got-0.8) > 1e-12 {
		t.Errorf("jobUtilization = %v, want 0.8 (tokens bind)", got)
	}
}

func TestParseStatCPU(t *testing.T) {
	stat := "4242 (quo ta) d) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3800*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.8s", got, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}
