package providersim

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clock"
)

// TestConcurrentClientsNeverExceedTheLimit hammers one pool from many goroutines
// on the real clock and checks the records against the bucket's bound: over
// any span, admissions <= capacity + rate * span.
func TestConcurrentClientsNeverExceedTheLimit(t *testing.T) {
	cfg := openAIConfig(20, 1_000_000)
	cfg.Default.Period = time.Second // 20 requests per second, burst 20
	cfg.Clock = clock.Real()
	cfg.Latency = &Latency{TimeToFirstToken: time.Millisecond, PerOutputToken: 10 * time.Microsecond}
	e := newEnv(t, cfg)

	const workers, perWorker = 8, 40
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards statuses
	statuses := map[int]int{}
	for range workers {
		wg.Go(func() {
			for range perWorker {
				res := e.chat(t, "k", 40, 50, map[string]any{"stream": true})
				mu.Lock()
				statuses[res.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	st := e.sim.Stats().Totals
	if statuses[http.StatusOK] != int(st.AdmittedRequests) || statuses[http.StatusTooManyRequests] != int(st.RefusedRequests) ||
		st.AdmittedRequests+st.RefusedRequests != workers*perWorker || st.CompletedRequests != st.AdmittedRequests {
		t.Fatalf("statuses %v, totals %+v", statuses, st)
	}
	if bound := 20 + int64(20*elapsed.Seconds()) + 1; st.AdmittedRequests > bound {
		t.Fatalf("%d admitted in %v, bound %d", st.AdmittedRequests, elapsed, bound)
	}
	var admitted []time.Time
	for _, ev := range e.sim.Events() {
		if ev.Kind == "admitted" {
			admitted = append(admitted, ev.Time)
		}
	}
	slices.SortFunc(admitted, time.Time.Compare)
	for i := range admitted {
		for j := i; j < len(admitted); j++ {
			span := admitted[j].Sub(admitted[i])
			if n := j - i + 1; float64(n) > 20+20*span.Seconds()+1e-9 {
				t.Fatalf("%d admissions within %v exceed burst 20 + 20/s", n, span)
			}
		}
	}
}
