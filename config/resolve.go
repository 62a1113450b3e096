package config

import (
	"cmp"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/provider"
)

// Defaults applied by Canonical and Limiter.
const (
	DefaultProvider     = provider.Default
	DefaultHeadroom     = 1.0
	DefaultLeaseTTL     = limiter.DefaultLeaseTTL
	DefaultTombstoneTTL = limiter.DefaultTombstoneTTL
	DefaultMaxWaiters   = limiter.DefaultMaxWaiters
	DefaultWeight       = 1
	// DefaultMaxOutputTokens is reserved for a call that gives no max_tokens: a
	// typical completion's cap. Set max_output_tokens to what your calls allow.
	DefaultMaxOutputTokens = 1024
	// DefaultQuotaExhaustedFor: long enough not to hammer a key whose spend limit is
	// reached, short enough to notice a raised limit without an operator.
	DefaultQuotaExhaustedFor = 10 * time.Minute
	// Periods up to this start empty by default, longer ones full.
	emptyUpTo = time.Minute
)

// Canonical returns a deep copy of p with every default written out and its
// limits sorted by resource, then period. Two pools that mean the same thing have
// equal canonical forms, and a canonical pool marshals (YAML or JSON) to a value
// that ParsePool decodes back to it. p should be valid.
func (p Pool) Canonical() Pool {
	c := p
	if c.Provider == "" {
		c.Provider = DefaultProvider
	}
	c.Headroom = orDefault(p.Headroom, DefaultHeadroom)
	c.LeaseTTL = orDefault(p.LeaseTTL, Duration(DefaultLeaseTTL))
	c.TombstoneTTL = orDefault(p.TombstoneTTL, Duration(DefaultTombstoneTTL))
	c.MaxWaiters = orDefault(p.MaxWaiters, int64(DefaultMaxWaiters))
	c.MaxOutputTokens = orDefault(p.MaxOutputTokens, int64(DefaultMaxOutputTokens))
	c.CharsPerToken = orDefault(p.CharsPerToken, c.Style().CharsPerToken())
	c.QuotaExhaustedFor = orDefault(p.QuotaExhaustedFor, Duration(DefaultQuotaExhaustedFor))
	c.Limits = nil
	for _, l := range p.Limits {
		c.Limits = append(c.Limits, Limit{
			Resource: l.Resource,
			Amount:   l.Amount,
			Per:      l.Per,
			Burst:    orDefault(l.Burst, l.Amount),
			Initial:  orDefault(l.Initial, defaultInitial(l.Per)),
		})
	}
	slices.SortFunc(c.Limits, func(a, b Limit) int {
		return cmp.Or(cmp.Compare(resourceOrder(a.Resource), resourceOrder(b.Resource)), cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Per, b.Per))
	})
	c.Tenants = nil
	if len(p.Tenants) > 0 {
		c.Tenants = make(map[string]Tenant, len(p.Tenants))
		for name, t := range p.Tenants {
			c.Tenants[name] = Tenant{Weight: orDefault(t.Weight, DefaultWeight)}
		}
	}
	return c
}

// Limiter resolves p into the engine's configuration: defaults applied, and every
// amount and burst scaled by the headroom (rounded down, at least 1). p must be
// valid.
func (p Pool) Limiter() limiter.Config {
	h := headroomNanos(*orDefault(p.Headroom, DefaultHeadroom))
	cfg := limiter.Config{
		Concurrent:   p.Concurrent,
		LeaseTTL:     time.Duration(*orDefault(p.LeaseTTL, Duration(DefaultLeaseTTL))),
		TombstoneTTL: time.Duration(*orDefault(p.TombstoneTTL, Duration(DefaultTombstoneTTL))),
		MaxWaiters:   int(*orDefault(p.MaxWaiters, int64(DefaultMaxWaiters))),
		MaxQueueWait: time.Duration(p.MaxQueueWait),
		Shadow:       p.Shadow,
	}
	for _, l := range p.Limits {
		r, _ := limiter.ParseResource(l.Resource)
		cfg.Limits = append(cfg.Limits, limiter.Limit{
			Resource: r,
			Amount:   scale(l.Amount, h),
			Period:   time.Duration(l.Per),
			Capacity: scale(*orDefault(l.Burst, l.Amount), h),
			Initial:  float64(*orDefault(l.Initial, defaultInitial(l.Per))),
		})
	}
	if len(p.Tenants) > 0 {
		cfg.TenantWeights = make(map[string]int64, len(p.Tenants))
		for name, t := range p.Tenants {
			cfg.TenantWeights[name] = *orDefault(t.Weight, DefaultWeight)
		}
	}
	return cfg
}

// Style returns the pool's provider style (the default when it names none).
func (p Pool) Style() provider.Style { return provider.MustLookup(p.Provider) }

// Equal reports whether p and q mean the same configuration: their canonical
// forms are deeply equal (pointers compared by what they point to).
func (p Pool) Equal(q Pool) bool {
	return reflect.DeepEqual(p.Canonical(), q.Canonical())
}

func defaultInitial(per Period) Fraction {
	if time.Duration(per) <= emptyUpTo {
		return Empty
	}
	return Full
}

func resourceOrder(name string) int {
	r, err := limiter.ParseResource(name)
	if err != nil {
		return math.MaxInt
	}
	return int(r)
}

// orDefault returns a new pointer to *v, or to def when v is nil.
func orDefault[T any](v *T, def T) *T {
	if v != nil {
		return new(*v)
	}
	return &def
}

// headroomNanos is the headroom in billionths, rounded to nearest, so that
// scaling is exact for headrooms written with up to nine decimals.
func headroomNanos(h float64) uint64 {
	return uint64(math.Round(h * 1e9))
}

// scale returns floor(n*h/1e9), at least 1. Invalid input (n <= 0, a headroom
// above 1) is passed through or saturated for limiter.Config.Validate to refuse.
func scale(n int64, h uint64) int64 {
	if n <= 0 {
		return n
	}
	hi, lo := bits.Mul64(uint64(n), h)
	if hi >= 1e9 {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, 1e9)
	return int64(min(max(q, 1), math.MaxInt64))
}
