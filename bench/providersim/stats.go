package providersim

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Stats is what the simulator has seen since it started or was last reset.
type Stats struct {
	// Start is when recording began; Series seconds count from it.
	Start time.Time `json:"start"`
	// Now is when the snapshot was taken.
	Now time.Time `json:"now"`
	// Totals and Series cover every pool.
	Totals Totals   `json:"totals"`
	Series []Second `json:"series"`
	// Pools holds the same per pool, keyed "openai/KEY/MODEL" or
	// "anthropic/KEY/MODEL".
	Pools map[string]PoolStats `json:"pools"`
	// DroppedEvents counts events not kept because the event log was full.
	DroppedEvents int64 `json:"dropped_events"`
}

// Event is one admission, refusal or settlement, as kept in the event log.
type Event struct {
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"` // "admitted", "refused" or "settled"
	API   string    `json:"api"`  // "openai" or "anthropic"
	Key   string    `json:"key"`
	Model string    `json:"model"`
	// Reason is why a request was refused, as in Totals.Refused.
	Reason string `json:"reason,omitempty"`
	// The tokens are the estimate charged (admitted), the estimate asked for
	// (refused) or the actual usage (settled).
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// PoolStats is the record of one pool.
type PoolStats struct {
	Totals Totals   `json:"totals"`
	Series []Second `json:"series"`
}

// Totals counts requests and tokens. OpenAI prompt tokens count as input and
// completion tokens as output.
type Totals struct {
	// AdmittedRequests were let through; CompletedRequests have been settled.
	AdmittedRequests  int64 `json:"admitted_requests"`
	CompletedRequests int64 `json:"completed_requests"`
	// RefusedRequests got a 429; Refused splits them by reason: "requests",
	// "tokens", "input_tokens", "output_tokens" (the first bucket that refused),
	// "request_too_large" and "insufficient_quota".
	RefusedRequests int64            `json:"refused_requests"`
	Refused         map[string]int64 `json:"refused"`
	// Admitted*Tokens are the estimates charged at admission.
	AdmittedInputTokens  int64 `json:"admitted_input_tokens"`
	AdmittedOutputTokens int64 `json:"admitted_output_tokens"`
	// Settled*Tokens are the actual usage of completed requests.
	SettledInputTokens  int64 `json:"settled_input_tokens"`
	SettledOutputTokens int64 `json:"settled_output_tokens"`
}

// Second is one second of the record, counted from Stats.Start. Events fall in
// the second in which they happen: admissions and refusals when decided,
// completions when settled.
type Second struct {
	Second            int64 `json:"second"`
	AdmittedRequests  int64 `json:"admitted_requests"`
	RefusedRequests   int64 `json:"refused_requests"`
	CompletedRequests int64 `json:"completed_requests"`
	// Charged*Tokens is the net debit of the buckets in this second: estimates
	// charged at admission plus the settlement differences (negative refunds).
	ChargedInputTokens  int64 `json:"charged_input_tokens"`
	ChargedOutputTokens int64 `json:"charged_output_tokens"`
	// Settled*Tokens is the actual usage of the requests completed in this second.
	SettledInputTokens  int64 `json:"settled_input_tokens"`
	SettledOutputTokens int64 `json:"settled_output_tokens"`
}

// account is the record of one pool, or of all of them.
type account struct {
	totals  Totals
	seconds map[int64]*Second
}

func newAccount() *account {
	return &account{totals: Totals{Refused: map[string]int64{}}, seconds: map[int64]*Second{}}
}

func (a *account) second(i int64) *Second {
	s, ok := a.seconds[i]
	if !ok {
		s = &Second{Second: i}
		a.seconds[i] = s
	}
	return s
}

func (a *account) snapshot() PoolStats {
	t := a.totals
	t.Refused = maps.Clone(t.Refused)
	series := make([]Second, 0, len(a.seconds))
	for _, i := range slices.Sorted(maps.Keys(a.seconds)) {
		series = append(series, *a.seconds[i])
	}
	return PoolStats{Totals: t, Series: series}
}

// recorder records admissions, refusals and settlements. Safe for concurrent use.
type recorder struct {
	maxEvents int // read-only

	mu      sync.Mutex // guards every field below
	gen     uint64     // counts resets; settlements of older generations are dropped
	start   time.Time
	all     *account
	pools   map[string]*account
	events  []Event
	dropped int64
}

func newRecorder(now time.Time, maxEvents int) *recorder {
	r := &recorder{maxEvents: maxEvents}
	r.resetLocked(now)
	return r
}

func (r *recorder) resetLocked(now time.Time) {
	r.gen++
	r.start = now
	r.all = newAccount()
	r.pools = map[string]*account{}
	r.events = nil
	r.dropped = 0
}

// logLocked keeps e in the event log if there is room.
func (r *recorder) logLocked(e Event) {
	if len(r.events) >= r.maxEvents {
		r.dropped++
		return
	}
	r.events = append(r.events, e)
}

func event(now time.Time, kind string, id poolID, u usage) Event {
	return Event{Time: now, Kind: kind, API: id.api.String(), Key: id.key, Model: id.model,
		InputTokens: u.input, OutputTokens: u.output}
}

func (r *recorder) reset(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resetLocked(now)
}

// eachLocked calls f on the total account and on pool's account for the second
// of now. r.mu is held.
func (r *recorder) eachLocked(now time.Time, pool poolID, f func(*Totals, *Second)) {
	name := pool.String()
	a, ok := r.pools[name]
	if !ok {
		a = newAccount()
		r.pools[name] = a
	}
	i := int64(now.Sub(r.start) / time.Second)
	if now.Before(r.start) {
		i = 0
	}
	for _, acc := range []*account{r.all, a} {
		f(&acc.totals, acc.second(i))
	}
}

// admitted records an admission and returns the generation to settle it in.
func (r *recorder) admitted(now time.Time, pool poolID, est usage) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logLocked(event(now, "admitted", pool, est))
	r.eachLocked(now, pool, func(t *Totals, s *Second) {
		t.AdmittedRequests++
		t.AdmittedInputTokens += est.input
		t.AdmittedOutputTokens += est.output
		s.AdmittedRequests++
		s.ChargedInputTokens += est.input
		s.ChargedOutputTokens += est.output
	})
	return r.gen
}

// refused records a 429 for reason, refusing est.
func (r *recorder) refused(now time.Time, pool poolID, reason string, est usage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := event(now, "refused", pool, est)
	e.Reason = reason
	r.logLocked(e)
	r.eachLocked(now, pool, func(t *Totals, s *Second) {
		t.RefusedRequests++
		t.Refused[reason]++
		s.RefusedRequests++
	})
}

// settled records the completion of a request admitted in generation gen.
func (r *recorder) settled(now time.Time, pool poolID, gen uint64, est, actual usage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		return
	}
	r.logLocked(event(now, "settled", pool, actual))
	r.eachLocked(now, pool, func(t *Totals, s *Second) {
		t.CompletedRequests++
		t.SettledInputTokens += actual.input
		t.SettledOutputTokens += actual.output
		s.CompletedRequests++
		s.ChargedInputTokens += actual.input - est.input
		s.ChargedOutputTokens += actual.output - est.output
		s.SettledInputTokens += actual.input
		s.SettledOutputTokens += actual.output
	})
}

func (r *recorder) snapshot(now time.Time) Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := r.all.snapshot()
	st := Stats{Start: r.start, Now: now, Totals: all.Totals, Series: all.Series,
		Pools: map[string]PoolStats{}, DroppedEvents: r.dropped}
	for name, a := range r.pools {
		st.Pools[name] = a.snapshot()
	}
	return st
}

func (r *recorder) eventLog() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}
