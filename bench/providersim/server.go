package providersim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the simulated provider: an http.Handler serving
//
//	POST /v1/chat/completions  OpenAI Chat Completions (key: Authorization: Bearer)
//	POST /v1/responses         OpenAI Responses (the same buckets as Chat Completions)
//	POST /v1/messages          Anthropic Messages (key: x-api-key)
//	GET  /sim/stats            Stats as JSON
//	GET  /sim/events           the event log: a JSON array of Event
//	POST /sim/reset            forget all buckets (they start full), stats and events
//
// Safe for concurrent use.
type Server struct {
	cfg       Config
	exhausted map[string]bool // QuotaExhaustedKeys; read-only after New
	lim       *limiter
	rec       *recorder
	mux       *http.ServeMux
	ids       atomic.Uint64 // response id sequence

	rngMu sync.Mutex // guards rng
	rng   *rand.Rand
}

// New returns a Server for cfg, with defaults filled in.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		exhausted: map[string]bool{},
		rec:       newRecorder(cfg.Clock.Now(), cfg.MaxEvents),
		mux:       http.NewServeMux(),
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
	s.lim = newLimiter(&s.cfg)
	for _, k := range cfg.QuotaExhaustedKeys {
		s.exhausted[k] = true
	}
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("POST /v1/responses", s.handleResponses)
	s.mux.HandleFunc("POST /v1/messages", s.handleMessages)
	s.mux.HandleFunc("GET /sim/stats", s.handleStats)
	s.mux.HandleFunc("GET /sim/events", s.handleEvents)
	s.mux.HandleFunc("POST /sim/reset", s.handleReset)
	s.mux.HandleFunc("/", s.handleNotFound)
	return s, nil
}

// Config returns the configuration in force, defaults filled in. Its maps and
// slices are shared with the server and must not be modified.
func (s *Server) Config() Config { return s.cfg }

// ServeHTTP serves the endpoints listed on Server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Stats returns what the simulator has recorded since it started or was reset.
func (s *Server) Stats() Stats { return s.rec.snapshot(s.cfg.Clock.Now()) }

// Events returns the event log since the simulator started or was reset (at
// most Config.MaxEvents events), in the order they were recorded: concurrent
// requests may record slightly out of time order, so sort by Time when it matters.
func (s *Server) Events() []Event { return s.rec.eventLog() }

// Reset refills every bucket and clears the stats and the event log. Requests
// in flight settle into the forgotten buckets and are not recorded.
func (s *Server) Reset() {
	s.lim.reset()
	s.rec.reset(s.cfg.Clock.Now())
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleEvents(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Events())
}

func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	status, msg := http.StatusNotFound, "Unknown request URL: "+r.Method+" "+r.URL.Path
	for _, p := range []string{"/v1/chat/completions", "/v1/responses", "/v1/messages", "/sim/stats", "/sim/events", "/sim/reset"} {
		if r.URL.Path == p {
			status, msg = http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed on "+p
		}
	}
	if strings.HasPrefix(r.URL.Path, "/v1/messages") {
		writeAnthropicError(w, status, "not_found_error", msg)
		return
	}
	writeOpenAIError(w, status, openAIError{Message: msg, Type: "invalid_request_error"})
}

// drawOutput returns how many output tokens a response capped at limit has.
func (s *Server) drawOutput(limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	lo := int64(math.Ceil(s.cfg.Output.MinFraction * float64(limit)))
	hi := int64(math.Ceil(s.cfg.Output.MaxFraction * float64(limit)))
	lo, hi = min(max(lo, 1), limit), min(max(hi, 1), limit)
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + s.rng.Int64N(hi-lo+1)
}

// nextID returns a fresh response id with prefix.
func (s *Server) nextID(prefix string) string {
	return prefix + itoa(int64(s.ids.Add(1)))
}

// tokenDeadline is when the first n output tokens of a request admitted at start
// are ready.
func (s *Server) tokenDeadline(start time.Time, n int64) time.Time {
	l := s.cfg.Latency
	return start.Add(l.TimeToFirstToken + time.Duration(n)*l.PerOutputToken)
}

// sleepUntil waits on the server's clock until t, or until ctx is done.
func (s *Server) sleepUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(s.cfg.Clock.Now())
	if d <= 0 {
		return ctx.Err()
	}
	done := make(chan struct{})
	timer := s.cfg.Clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	}
}

// readBody reads r's body, capped at the configured size. It reports the HTTP
// status of a failure.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", tooLarge.Limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err)
	}
	return body, http.StatusOK, nil
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}
