package driver

import (
	"fmt"
	"slices"
	"time"

	"github.com/quotad/quotad/bench/providersim"
)

// Mode is how the services of a run limit themselves.
type Mode string

// The modes, compared side by side on the same workload.
const (
	ModeNone      Mode = "none"
	ModeSemaphore Mode = "semaphore"
	ModeQuotad    Mode = "quotad"
)

// AllModes lists every mode, in the order results are printed.
var AllModes = []Mode{ModeNone, ModeSemaphore, ModeQuotad}

// ParseMode returns the Mode named s.
func ParseMode(s string) (Mode, error) {
	m := Mode(s)
	if !slices.Contains(AllModes, m) {
		return "", fmt.Errorf("unknown mode %q (want none, semaphore or quotad)", s)
	}
	return m, nil
}

// Scenario is one fleet, one provider key and one workload.
type Scenario struct {
	Name string `json:"name"`
	// Services processes, each with Tasks concurrent tasks making CallsPerTask
	// calls one after another.
	Services     int `json:"services"`
	Tasks        int `json:"tasks"`
	CallsPerTask int `json:"calls_per_task"`

	// The key's limits: Requests and Tokens per Period, enforced by the
	// simulator and mirrored exactly by the quotad pool (headroom 1).
	Period   time.Duration `json:"period"`
	Requests int64         `json:"requests"`
	Tokens   int64         `json:"tokens"`
	// The simulator's response time: TimeToFirstToken + output × PerOutputToken.
	TimeToFirstToken time.Duration `json:"time_to_first_token"`
	PerOutputToken   time.Duration `json:"per_output_token"`

	Workload Workload `json:"workload"`

	// QuotadInitial, when set, is the initial level of the quotad pool's
	// buckets (empty, full or a fraction); by default quotad's own default
	// (empty for periods up to a minute) stands.
	QuotadInitial string `json:"quotad_initial,omitempty"`

	// QuotadNodes, when above 1, runs ModeQuotad against a cluster of that many
	// nodes: service i calls node i mod QuotadNodes and fails over to the
	// others; the pool's owner serves the calls of the other nodes' services
	// forwarded.
	QuotadNodes int `json:"quotad_nodes,omitempty"`

	// ReportHeaders makes ModeQuotad pass the provider's rate-limit headers
	// with every Report, not only with a 429's.
	ReportHeaders bool `json:"report_headers,omitempty"`

	// Semaphore is the per-process bound of ModeSemaphore.
	Semaphore int `json:"semaphore"`
	// MaxRetries is how often a call refused with a 429 is retried (the OpenAI
	// SDKs' default is 2).
	MaxRetries int `json:"max_retries"`
	// Warmup is left out of the steady-state window at its start.
	Warmup time.Duration `json:"warmup"`
	// Timeout bounds one mode's run.
	Timeout time.Duration `json:"timeout"`
	Seed    uint64        `json:"seed"`
}

// Workload is the seeded mix of calls: a call is a long retrieval prompt with
// probability LongFraction, else a short chat; its max_tokens is uniform in
// MaxTokens. Ranges are inclusive [min, max].
type Workload struct {
	ShortChars   [2]int  `json:"short_chars"`
	LongChars    [2]int  `json:"long_chars"`
	LongFraction float64 `json:"long_fraction"`
	MaxTokens    [2]int  `json:"max_tokens"`
}

// Standard is the benchmark's main scenario: 8 services × 32 tasks on one key
// at 600 RPM and 200k TPM.
func Standard() Scenario {
	return Scenario{
		Name:     "standard",
		Services: 8, Tasks: 32, CallsPerTask: 2,
		Period: time.Minute, Requests: 600, Tokens: 200_000,
		TimeToFirstToken: 50 * time.Millisecond, PerOutputToken: time.Millisecond,
		Workload: Workload{
			ShortChars: [2]int{150, 250}, LongChars: [2]int{8_000, 20_000},
			LongFraction: 0.1, MaxTokens: [2]int{256, 1024},
		},
		Semaphore: 4, MaxRetries: 2,
		Warmup:  10 * time.Second,
		Timeout: 5 * time.Minute,
		Seed:    1,
	}
}

// Smoke is a small, fast scenario with limits per 5 s: a burst of the fleet's
// first calls is larger than the request bucket, so a fleet without a limiter
// must get 429s.
func Smoke() Scenario {
	return Scenario{
		Name:     "smoke",
		Services: 3, Tasks: 8, CallsPerTask: 1,
		Period: 5 * time.Second, Requests: 20, Tokens: 8_000,
		TimeToFirstToken: 20 * time.Millisecond, PerOutputToken: time.Millisecond,
		Workload: Workload{
			ShortChars: [2]int{150, 250}, LongChars: [2]int{2_000, 4_000},
			LongFraction: 0.25, MaxTokens: [2]int{32, 128},
		},
		Semaphore: 2, MaxRetries: 2,
		Warmup:  time.Second,
		Timeout: time.Minute,
		Seed:    1,
	}
}

// Scenarios returns the named scenarios.
func Scenarios() map[string]Scenario {
	return map[string]Scenario{"standard": Standard(), "smoke": Smoke()}
}

// Validate reports the first field of s that cannot run.
func (s Scenario) Validate() error {
	w := s.Workload
	switch {
	case s.Services < 1 || s.Tasks < 1 || s.CallsPerTask < 1:
		return fmt.Errorf("scenario %s: services, tasks and calls per task must be at least 1", s.Name)
	case s.Period <= 0 || s.Requests < 1 || s.Tokens < 1:
		return fmt.Errorf("scenario %s: period, requests and tokens must be positive", s.Name)
	case s.QuotadNodes < 0:
		return fmt.Errorf("scenario %s: quotad nodes %d must not be negative", s.Name, s.QuotadNodes)
	case s.Semaphore < 1 || s.MaxRetries < 0:
		return fmt.Errorf("scenario %s: semaphore must be at least 1 and max retries not negative", s.Name)
	case s.Timeout <= 0 || s.Warmup < 0:
		return fmt.Errorf("scenario %s: timeout must be positive and warmup not negative", s.Name)
	case !validRange(w.ShortChars, 1) || !validRange(w.LongChars, 1) || !validRange(w.MaxTokens, 1):
		return fmt.Errorf("scenario %s: workload ranges must be positive and in order", s.Name)
	case w.LongFraction < 0 || w.LongFraction > 1:
		return fmt.Errorf("scenario %s: long fraction %v is not within 0..1", s.Name, w.LongFraction)
	}
	return nil
}

func validRange(r [2]int, least int) bool { return r[0] >= least && r[1] >= r[0] }

// simConfig is the simulator configuration of s: one key with s's limits.
func (s Scenario) simConfig() providersim.Config {
	return providersim.Config{
		Default: providersim.Limits{
			Period:   s.Period,
			Requests: providersim.Rate{Limit: s.Requests},
			Tokens:   providersim.Rate{Limit: s.Tokens},
		},
		Latency: &providersim.Latency{TimeToFirstToken: s.TimeToFirstToken, PerOutputToken: s.PerOutputToken},
		Seed:    s.Seed,
	}
}

// poolYAML is the quotad configuration mirroring s's key exactly: the same
// amounts and period, headroom 1, every other setting at its default (but the
// initial level when s.QuotadInitial is set).
func (s Scenario) poolYAML(pool string) string {
	initial := ""
	if s.QuotadInitial != "" {
		initial = ", initial: " + s.QuotadInitial
	}
	return fmt.Sprintf(`pools:
  - name: %s
    provider: openai
    headroom: 1.0
    limits:
      - {resource: requests, amount: %d, per: %s%s}
      - {resource: tokens, amount: %d, per: %s%s}
`, pool, s.Requests, s.Period, initial, s.Tokens, s.Period, initial)
}
