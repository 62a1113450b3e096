package providersim

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStatsSeriesAndReset(t *testing.T) {
	cfg := openAIConfig(2, 100_000)
	cfg.Output = Output{MinFraction: 0.5, MaxFraction: 0.5}
	e := newEnv(t, cfg)
	e.chat(t, "k", 40, 20, nil)
	e.chat(t, "k", 40, 20, nil)
	e.chat(t, "k", 40, 20, nil) // refused on requests
	e.clock.Advance(1500 * time.Millisecond)
	e.messages(t, "k", 8, 10, nil)

	st := e.sim.Stats()
	want := Totals{AdmittedRequests: 3, CompletedRequests: 3, RefusedRequests: 1,
		Refused:             map[string]int64{"requests": 1},
		AdmittedInputTokens: 22, AdmittedOutputTokens: 50, SettledInputTokens: 22, SettledOutputTokens: 25}
	if !reflect.DeepEqual(st.Totals, want) {
		t.Fatalf("totals %+v\nwant   %+v", st.Totals, want)
	}
	wantSeries := []Second{
		{Second: 0, AdmittedRequests: 2, RefusedRequests: 1, CompletedRequests: 2,
			ChargedInputTokens: 20, ChargedOutputTokens: 20, SettledInputTokens: 20, SettledOutputTokens: 20},
		{Second: 1, AdmittedRequests: 1, CompletedRequests: 1,
			ChargedInputTokens: 2, ChargedOutputTokens: 5, SettledInputTokens: 2, SettledOutputTokens: 5},
	}
	if !reflect.DeepEqual(st.Series, wantSeries) {
		t.Fatalf("series %+v\nwant   %+v", st.Series, wantSeries)
	}
	if p := st.Pools["anthropic/k/claude-sonnet-4-5"]; p.Totals.AdmittedRequests != 1 || len(p.Series) != 1 {
		t.Fatalf("anthropic pool %+v", p)
	}

	events := e.sim.Events()
	var kinds []string
	for _, ev := range events {
		kinds = append(kinds, ev.Kind+":"+ev.Reason)
	}
	if got := strings.Join(kinds, ","); got != "admitted:,settled:,admitted:,settled:,refused:requests,admitted:,settled:" {
		t.Fatalf("event kinds %s", got)
	}
	wantEvent := Event{Time: t0.Add(1500 * time.Millisecond), Kind: "settled", API: "anthropic", Key: "k",
		Model: "claude-sonnet-4-5", InputTokens: 2, OutputTokens: 5}
	if events[6] != wantEvent {
		t.Fatalf("last event %+v, want %+v", events[6], wantEvent)
	}

	res, err := http.Get(e.url + "/sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var fromHTTP Stats
	if err := decodeBody(res, &fromHTTP); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromHTTP.Totals, st.Totals) || !reflect.DeepEqual(fromHTTP.Pools, st.Pools) {
		t.Fatalf("GET /sim/stats %+v differs from Stats() %+v", fromHTTP, st)
	}

	if r := e.post(t, "/sim/reset", ""); r.status != http.StatusOK {
		t.Fatalf("reset: %d", r.status)
	}
	if st := e.sim.Stats(); st.Totals.AdmittedRequests != 0 || len(st.Series) != 0 || !st.Start.Equal(e.clock.Now()) ||
		len(e.sim.Events()) != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	wantHeaders(t, e.chat(t, "k", 40, 20, nil).header, "x-ratelimit-remaining-requests", "1")
}

func TestEventLogIsCapped(t *testing.T) {
	e := newEnv(t, Config{MaxEvents: 3})
	for range 3 {
		e.chat(t, "k", 4, 1, nil)
	}
	if n, st := len(e.sim.Events()), e.sim.Stats(); n != 3 || st.DroppedEvents != 3 {
		t.Fatalf("%d events kept, %d dropped; want 3 and 3", n, st.DroppedEvents)
	}
	res, err := http.Get(e.url + "/sim/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var events []Event
	if err := decodeBody(res, &events); err != nil || len(events) != 3 || events[0].Kind != "admitted" {
		t.Fatalf("GET /sim/events: %v %+v", err, events)
	}
}
