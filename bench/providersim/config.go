package providersim

import (
	"errors"
	"fmt"
	"time"

	"github.com/quotad/quotad/internal/clock"
)

// Config configures a Server. The zero value is valid: every zero field takes the
// default documented on it.
type Config struct {
	// Default holds the limits of every key and model not listed in Pools. The zero
	// value means DefaultLimits().
	Default Limits
	// Pools overrides the limits per API key and model. An entry with an empty
	// Model applies to every model of that key without an entry of its own.
	Pools map[Pool]Limits

	// Latency shapes how long an admitted request takes. nil means
	// DefaultLatency(); &Latency{} means no delay at all.
	Latency *Latency
	// Output shapes how many output tokens a response has.
	Output Output
	// DefaultMaxTokens is the output cap of an OpenAI request that sets neither
	// max_tokens nor max_completion_tokens; it is reserved at admission like an
	// explicit cap. Default 1024.
	DefaultMaxTokens int64
	// Seed seeds the output-length draws: the same seed and the same request order
	// give the same responses.
	Seed uint64

	// Organization names the organization in OpenAI error messages. Default "org-sim".
	Organization string
	// QuotaExhaustedKeys lists OpenAI API keys whose every request is refused with
	// a 429 of type insufficient_quota (no retry-after), as a spent account is.
	QuotaExhaustedKeys []string
	// MaxBodyBytes caps a request body; larger bodies get 413. Default 4 MiB.
	MaxBodyBytes int64
	// MaxEvents caps the event log; later events are only counted. Default
	// 100,000; negative keeps no events.
	MaxEvents int

	// Clock is the time source of the buckets and the latency model. Default the
	// system clock.
	Clock clock.Clock
}

// Pool names the limits of one API key (the OpenAI bearer token or the Anthropic
// x-api-key) and model.
type Pool struct {
	APIKey string
	Model  string
}

// Limits are the rate limits of one pool. OpenAI-shaped requests use Requests and
// Tokens; Anthropic-shaped requests use Requests, InputTokens and OutputTokens. A
// Rate with a zero Limit is not enforced and reported in no header.
type Limits struct {
	// Period is the time over which each Limit refills completely. Default 1 minute.
	Period time.Duration
	// Requests is the requests per period (RPM).
	Requests Rate
	// Tokens is the OpenAI tokens per period (TPM): prompt plus completion.
	Tokens Rate
	// InputTokens is the Anthropic input tokens per period (ITPM).
	InputTokens Rate
	// OutputTokens is the Anthropic output tokens per period (OTPM).
	OutputTokens Rate
}

// Rate is one continuously refilling bucket: Limit per period, holding at most
// Burst (default Limit). A bucket starts full.
type Rate struct {
	Limit int64
	Burst int64
}

// DefaultLimits returns the limits used when Config.Default is zero: 500 requests,
// 200,000 OpenAI tokens, 200,000 Anthropic input and 40,000 output tokens per minute.
func DefaultLimits() Limits {
	return Limits{
		Period:       time.Minute,
		Requests:     Rate{Limit: 500},
		Tokens:       Rate{Limit: 200_000},
		InputTokens:  Rate{Limit: 200_000},
		OutputTokens: Rate{Limit: 40_000},
	}
}

// Latency is the time model of a response: an admitted request with N output
// tokens completes TimeToFirstToken + N*PerOutputToken after admission.
type Latency struct {
	TimeToFirstToken time.Duration
	PerOutputToken   time.Duration
}

// DefaultLatency is a small latency that still makes concurrency matter.
func DefaultLatency() Latency {
	return Latency{TimeToFirstToken: 50 * time.Millisecond, PerOutputToken: time.Millisecond}
}

// Output is the distribution of a response's output tokens: uniform in
// [ceil(MinFraction*cap), ceil(MaxFraction*cap)], at least 1 and at most cap,
// where cap is the request's output cap (max_tokens and the like). Zero fields
// mean MinFraction 0.25 and MaxFraction 1; set both to 1 for always-full responses.
type Output struct {
	MinFraction float64
	MaxFraction float64
}

// withDefaults returns cfg with every zero field replaced by its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Default == (Limits{}) {
		cfg.Default = DefaultLimits()
	}
	if cfg.Latency == nil {
		l := DefaultLatency()
		cfg.Latency = &l
	}
	if cfg.DefaultMaxTokens == 0 {
		cfg.DefaultMaxTokens = 1024
	}
	if cfg.Output.MinFraction == 0 {
		cfg.Output.MinFraction = 0.25
	}
	if cfg.Output.MaxFraction == 0 {
		cfg.Output.MaxFraction = 1
	}
	if cfg.Organization == "" {
		cfg.Organization = "org-sim"
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	switch {
	case cfg.MaxEvents == 0:
		cfg.MaxEvents = 100_000
	case cfg.MaxEvents < 0:
		cfg.MaxEvents = 0
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if err := cfg.Default.validate(); err != nil {
		return cfg, fmt.Errorf("providersim: Default: %w", err)
	}
	for p, l := range cfg.Pools {
		if err := l.validate(); err != nil {
			return cfg, fmt.Errorf("providersim: Pools[%q, %q]: %w", p.APIKey, p.Model, err)
		}
	}
	switch {
	case cfg.DefaultMaxTokens < 0:
		return cfg, errors.New("providersim: DefaultMaxTokens is negative")
	case cfg.Latency.TimeToFirstToken < 0 || cfg.Latency.PerOutputToken < 0:
		return cfg, errors.New("providersim: Latency is negative")
	case cfg.Output.MinFraction < 0 || cfg.Output.MaxFraction > 1 || cfg.Output.MinFraction > cfg.Output.MaxFraction:
		return cfg, fmt.Errorf("providersim: Output fractions %v..%v are not within 0..1 in order",
			cfg.Output.MinFraction, cfg.Output.MaxFraction)
	case cfg.MaxBodyBytes < 0:
		return cfg, errors.New("providersim: MaxBodyBytes is negative")
	}
	return cfg, nil
}

// limitsFor returns the limits of key and model, with the period defaulted.
func (cfg *Config) limitsFor(key, model string) Limits {
	l, ok := cfg.Pools[Pool{APIKey: key, Model: model}]
	if !ok {
		l, ok = cfg.Pools[Pool{APIKey: key}]
	}
	if !ok {
		l = cfg.Default
	}
	if l.Period == 0 {
		l.Period = time.Minute
	}
	return l
}

func (l Limits) validate() error {
	if l.Period < 0 {
		return errors.New("period is negative")
	}
	rates := []struct {
		name string
		Rate
	}{{"Requests", l.Requests}, {"Tokens", l.Tokens}, {"InputTokens", l.InputTokens}, {"OutputTokens", l.OutputTokens}}
	for _, r := range rates {
		if r.Limit < 0 || r.Burst < 0 {
			return fmt.Errorf("%s: negative limit or burst", r.name)
		}
	}
	return nil
}
