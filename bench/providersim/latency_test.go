package providersim

import (
	"net/http"
	"testing"
	"time"
)

// waitPending waits (in real time) until the fake clock has n timers armed.
func waitPending(t *testing.T, e *simEnv, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.clock.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("fake clock has %d timers, want %d", e.clock.Pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLatencyIsTimeToFirstTokenPlusPerToken(t *testing.T) {
	cfg := openAIConfig(100, 100_000)
	cfg.Latency = &Latency{TimeToFirstToken: 100 * time.Millisecond, PerOutputToken: 10 * time.Millisecond}
	e := newEnv(t, cfg)
	done := make(chan response, 1)
	go func() { done <- e.chat(t, "k", 4, 5, nil) }()

	waitPending(t, e, 1)
	e.clock.Advance(149 * time.Millisecond)
	waitPending(t, e, 1) // still waiting
	select {
	case res := <-done:
		t.Fatalf("answered 1ms early: %d", res.status)
	default:
	}
	if st := e.sim.Stats().Totals; st.AdmittedRequests != 1 || st.CompletedRequests != 0 {
		t.Fatalf("in flight: %+v", st)
	}
	e.clock.Advance(time.Millisecond)
	if res := <-done; res.status != http.StatusOK {
		t.Fatalf("status %d", res.status)
	}
	if st := e.sim.Stats().Totals; st.CompletedRequests != 1 || st.SettledOutputTokens != 5 {
		t.Fatalf("after completion: %+v", st)
	}
}

func TestOutputDrawsAreSeededAndCapped(t *testing.T) {
	draw := func(seed uint64) []int64 {
		s, err := New(Config{Seed: seed, Latency: &Latency{}})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int64, 200)
		for i := range out {
			out[i] = s.drawOutput(100)
			if out[i] < 25 || out[i] > 100 {
				t.Fatalf("draw %d outside [25, 100]", out[i])
			}
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	same := func(x, y []int64) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, c) {
		t.Fatalf("same seed must repeat draws, another seed must not")
	}
}
