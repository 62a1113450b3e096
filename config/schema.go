package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/quotad/quotad/provider"
)

// File is the content of a configuration file.
type File struct {
	Pools []Pool `yaml:"pools" json:"pools"`
}

// Pool is one pool as written in a file, an etcd value or by the CLI. Optional
// fields are pointers (or zero values where zero is the default): nil means the
// default documented on the field. Decode with ParsePool or ParseFile, check with
// Validate, and resolve with Limiter.
type Pool struct {
	Name string `yaml:"name" json:"name"`
	// Provider names the pool's provider style (package provider): how token
	// reservations are estimated and which rate-limit headers a Report carries.
	// Default provider.Default.
	Provider provider.Name `yaml:"provider,omitempty" json:"provider,omitempty"`
	// Headroom scales every amount and burst, in (0, 1]. Default 1.
	Headroom *float64 `yaml:"headroom,omitempty" json:"headroom,omitempty"`
	Limits   []Limit  `yaml:"limits,omitempty" json:"limits,omitempty"`
	// Concurrent caps calls in flight. Zero means no cap.
	Concurrent int64 `yaml:"concurrent,omitempty" json:"concurrent,omitempty"`
	// LeaseTTL defaults to 60s.
	LeaseTTL *Duration `yaml:"lease_ttl,omitempty" json:"lease_ttl,omitempty"`
	// TombstoneTTL defaults to 1h.
	TombstoneTTL *Duration `yaml:"tombstone_ttl,omitempty" json:"tombstone_ttl,omitempty"`
	// MaxWaiters defaults to 10000.
	MaxWaiters *int64 `yaml:"max_waiters,omitempty" json:"max_waiters,omitempty"`
	// MaxQueueWait refuses, when it arrives, a call whose predicted wait is longer.
	// Zero means no bound: the caller's own max_wait and deadline still apply.
	MaxQueueWait Duration `yaml:"max_queue_wait,omitempty" json:"max_queue_wait,omitempty"`
	Shadow       bool     `yaml:"shadow,omitempty" json:"shadow,omitempty"`
	// Tenants gives named tenants a weight; tenants not listed weigh 1.
	Tenants map[string]Tenant `yaml:"tenants,omitempty" json:"tenants,omitempty"`
	// MaxOutputTokens is the output reserved for a call that sends its prompt but no
	// max_tokens. Default DefaultMaxOutputTokens.
	MaxOutputTokens *int64 `yaml:"max_output_tokens,omitempty" json:"max_output_tokens,omitempty"`
	// CharsPerToken estimates the tokens of a model with no known encoding.
	// Default: the provider style's.
	CharsPerToken *float64 `yaml:"chars_per_token,omitempty" json:"chars_per_token,omitempty"`
	// CountCacheReads counts Anthropic's cache reads toward the input limit; most
	// models do not count them. Default false.
	CountCacheReads bool `yaml:"count_cache_reads,omitempty" json:"count_cache_reads,omitempty"`
	// QuotaExhaustedFor is how long the pool fails fast after the provider says the
	// key's quota is spent. Default DefaultQuotaExhaustedFor.
	QuotaExhaustedFor *Duration `yaml:"quota_exhausted_for,omitempty" json:"quota_exhausted_for,omitempty"`
}

// Limit is an amount of one resource per period, before headroom.
type Limit struct {
	// Resource is requests, tokens, input_tokens or output_tokens.
	Resource string `yaml:"resource" json:"resource"`
	Amount   int64  `yaml:"amount" json:"amount"`
	Per      Period `yaml:"per" json:"per"`
	// Burst is the bucket capacity. Default Amount.
	Burst *int64 `yaml:"burst,omitempty" json:"burst,omitempty"`
	// Initial is the fraction of the capacity a new bucket holds. Default empty
	// (0) for periods up to a minute and full (1) for longer ones.
	Initial *Fraction `yaml:"initial,omitempty" json:"initial,omitempty"`
}

// Tenant is one tenant's share of a saturated pool.
type Tenant struct {
	// Weight defaults to 1.
	Weight *int64 `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Period is a limit's period, written as second, minute, hour, day or a Go
// duration string.
type Period time.Duration

var periodWords = []struct {
	word string
	d    time.Duration
}{{"second", time.Second}, {"minute", time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}}

func parsePeriod(s string) (Period, error) {
	for _, w := range periodWords {
		if s == w.word {
			return Period(w.d), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither second, minute, hour, day nor a duration like 10s", s)
	}
	return Period(d), nil
}

// String returns the word for whole seconds, minutes, hours and days, and the Go
// duration otherwise.
func (p Period) String() string {
	for _, w := range periodWords {
		if time.Duration(p) == w.d {
			return w.word
		}
	}
	return time.Duration(p).String()
}

// MarshalYAML implements yaml.Marshaler.
func (p Period) MarshalYAML() (any, error) { return p.String(), nil }

// MarshalJSON implements json.Marshaler.
func (p Period) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// Fraction is a bucket's initial level as a fraction of its capacity, written as
// empty (0), full (1) or a number.
type Fraction float64

// Initial levels by name.
const (
	Empty Fraction = 0
	Full  Fraction = 1
)

func (f Fraction) String() string {
	switch f {
	case Empty:
		return "empty"
	case Full:
		return "full"
	}
	return strconv.FormatFloat(float64(f), 'g', -1, 64)
}

// MarshalYAML implements yaml.Marshaler.
func (f Fraction) MarshalYAML() (any, error) {
	if f == Empty || f == Full {
		return f.String(), nil
	}
	return float64(f), nil
}

// MarshalJSON implements json.Marshaler.
func (f Fraction) MarshalJSON() ([]byte, error) {
	if f == Empty || f == Full {
		return json.Marshal(f.String())
	}
	return json.Marshal(float64(f))
}
