package limiter

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Resource is what a rate limit counts.
type Resource uint8

const (
	Requests     Resource = iota // calls
	Tokens                       // input + output tokens
	InputTokens                  // prompt tokens
	OutputTokens                 // completion tokens (reserved as max_tokens)
	numResources
)

var resourceNames = [numResources]string{"requests", "tokens", "input_tokens", "output_tokens"}

func (r Resource) String() string {
	if r < numResources {
		return resourceNames[r]
	}
	return fmt.Sprintf("resource(%d)", uint8(r))
}

// ParseResource maps a resource name ("requests", "tokens", "input_tokens",
// "output_tokens") to its Resource.
func ParseResource(name string) (Resource, error) {
	for i, n := range resourceNames {
		if n == name {
			return Resource(i), nil
		}
	}
	return 0, fmt.Errorf("unknown resource %q (want requests, tokens, input_tokens or output_tokens)", name)
}

// Limit is one continuously refilling bucket: it holds at most Capacity and refills
// Amount every Period. Values are effective ones: any headroom is already applied.
type Limit struct {
	Resource Resource
	Amount   int64
	Period   time.Duration
	// Capacity is the bucket size (the burst). Zero means Amount.
	Capacity int64
	// Initial is the fraction of Capacity the bucket holds when the pool is first
	// seen, in [0, 1].
	Initial float64
}

// Config is one pool's resolved configuration. The config package builds it from the
// pool schema (defaults and headroom applied); the engine trusts it to be valid and
// checks it once in NewPool/Reconfigure.
type Config struct {
	Limits []Limit
	// Concurrent caps calls in flight (open leases). Zero means no cap.
	Concurrent int64
	// LeaseTTL is how long a grant holds its slot and estimate without a Renew.
	LeaseTTL time.Duration
	// TombstoneTTL is how long an expired or reported grant is remembered, so that a
	// late Report settles against it instead of charging twice.
	TombstoneTTL time.Duration
	// MaxTombstones caps remembered grants; the oldest go first.
	MaxTombstones int
	// MaxWaiters caps the queue; beyond it Acquire fails with ErrQueueFull.
	MaxWaiters int
	// MaxQueueWait refuses, at enqueue, a call whose predicted wait is longer.
	// Zero means no bound.
	MaxQueueWait time.Duration
	// MaxLeases caps open leases (memory bound). Zero means DefaultMaxLeases.
	MaxLeases int
	// Shadow grants at once and records the wait the pool would have imposed.
	Shadow bool
	// TenantWeights gives each named tenant its share of a saturated pool; tenants
	// not listed weigh 1.
	TenantWeights map[string]int64
	// Definition is what the caller built this Config from (the server keeps the
	// pool's config.Pool here: its provider style and token settings), so that a
	// pool's definition lives in one place. The engine never reads it and does
	// not compare it: it keeps the latest accepted one with the pool and returns
	// it from Limiter.Definition.
	Definition any
}

// Defaults used where a Config leaves a field zero.
const (
	DefaultLeaseTTL      = 60 * time.Second
	DefaultTombstoneTTL  = time.Hour
	DefaultMaxTombstones = 16384
	DefaultMaxWaiters    = 10000
	DefaultMaxLeases     = 100000
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.TombstoneTTL <= 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.MaxTombstones <= 0 {
		c.MaxTombstones = DefaultMaxTombstones
	}
	if c.MaxWaiters <= 0 {
		c.MaxWaiters = DefaultMaxWaiters
	}
	if c.MaxLeases <= 0 {
		c.MaxLeases = DefaultMaxLeases
	}
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	for i, l := range c.Limits {
		switch {
		case l.Resource >= numResources:
			return fmt.Errorf("limits[%d]: %v", i, l.Resource)
		case l.Amount <= 0:
			return fmt.Errorf("limits[%d] (%v): amount %d must be positive", i, l.Resource, l.Amount)
		case l.Period < time.Millisecond:
			return fmt.Errorf("limits[%d] (%v): period %v must be at least 1ms", i, l.Resource, l.Period)
		case l.Capacity < 0:
			return fmt.Errorf("limits[%d] (%v): capacity %d must not be negative", i, l.Resource, l.Capacity)
		case !(l.Initial >= 0 && l.Initial <= 1):
			return fmt.Errorf("limits[%d] (%v): initial %v must be within [0, 1]", i, l.Resource, l.Initial)
		}
		if _, ok := newBucketRate(l); !ok {
			return fmt.Errorf("limits[%d] (%v): capacity %d per %v at %d per period does not fit the engine's arithmetic", i, l.Resource, l.capacity(), l.Period, l.Amount)
		}
	}
	if c.Concurrent < 0 {
		return fmt.Errorf("concurrent %d must not be negative", c.Concurrent)
	}
	for t, w := range c.TenantWeights {
		if w <= 0 || w > 1_000_000 {
			return fmt.Errorf("tenant %q: weight %d must be within [1, 1000000]", t, w)
		}
	}
	return nil
}

// equal reports whether c and o define the same pool (it names every field).
func (c Config) equal(o Config) bool {
	return slices.Equal(c.Limits, o.Limits) && maps.Equal(c.TenantWeights, o.TenantWeights) &&
		c.Concurrent == o.Concurrent && c.LeaseTTL == o.LeaseTTL && c.TombstoneTTL == o.TombstoneTTL &&
		c.MaxTombstones == o.MaxTombstones && c.MaxWaiters == o.MaxWaiters && c.MaxQueueWait == o.MaxQueueWait &&
		c.MaxLeases == o.MaxLeases && c.Shadow == o.Shadow
}

func (l Limit) capacity() int64 {
	if l.Capacity > 0 {
		return l.Capacity
	}
	return l.Amount
}
