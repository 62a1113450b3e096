package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quotad/quotad/provider"

	"gopkg.in/yaml.v3"

	"github.com/quotad/quotad/limiter"
)

// Bounds checked by Validate.
const (
	MaxNameLen    = 256
	MaxAmount     = 1_000_000_000_000_000 // 1e15, for amount and burst
	MinPeriod     = time.Millisecond
	MaxPeriod     = 31 * 24 * time.Hour
	MaxRefill     = 366 * 24 * time.Hour // time to refill a whole bucket: burst/amount*period
	MaxLimits     = 32
	MaxTenants    = 1024
	MaxWeight     = 1_000_000
	MaxConcurrent = limiter.DefaultMaxLeases
	MaxWaiters    = 1_000_000
	MinLeaseTTL   = time.Second
	MaxLeaseTTL   = time.Hour
	MinTombstone  = time.Second
	MaxTombstone  = 7 * 24 * time.Hour
)

// FieldError is one problem with one field of one pool.
type FieldError struct {
	// Pool is the pool's name, empty when it has none.
	Pool string
	// Index is the pool's position in a file, or -1.
	Index int
	// Field is the path of the field, such as "limits[1].amount"; empty for the
	// pool as a whole.
	Field string
	// Line is the line in the input, or 0 when unknown.
	Line int
	// Msg says what is wrong, including the offending value.
	Msg string
}

// Error formats e as `pool "openai/prod": limits[1].amount: -5 must be positive`.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.Pool != "":
		fmt.Fprintf(&b, "pool %q: ", e.Pool)
	case e.Index >= 0:
		fmt.Fprintf(&b, "pools[%d]: ", e.Index)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// poolLabel identifies a pool in errors, by name or by position in a file.
type poolLabel struct {
	name  string
	index int
}

// errorf returns a *FieldError for field of the pool, at the line of n if n is
// not nil.
func (l poolLabel) errorf(n *yaml.Node, field, format string, args ...any) *FieldError {
	e := &FieldError{Pool: l.name, Index: l.index, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// Validate reports every problem with the file's pools, and names used twice.
func (f File) Validate() error {
	index := make([]int, len(f.Pools))
	for i := range index {
		index[i] = i
	}
	return validatePools(f.Pools, index)
}

// validatePools validates each pool, and that no name is used twice; index[i] is
// the position of pools[i] in the input, for error messages.
func validatePools(pools []Pool, index []int) error {
	var errs []error
	seen := make(map[string]int, len(pools))
	for i, p := range pools {
		if err := p.validate(poolLabel{name: p.Name, index: index[i]}); err != nil {
			errs = append(errs, err)
			continue
		}
		if j, dup := seen[p.Name]; dup {
			errs = append(errs, &FieldError{Pool: p.Name, Index: index[i], Field: "name", Msg: fmt.Sprintf("%q is already used by pools[%d]", p.Name, j)})
			continue
		}
		seen[p.Name] = index[i]
	}
	return errors.Join(errs...)
}

// Validate reports every problem with p, joined with errors.Join; each is a
// *FieldError. A pool that validates resolves to a limiter.Config the engine
// accepts.
func (p Pool) Validate() error {
	return p.validate(poolLabel{name: p.Name, index: -1})
}

func (p Pool) validate(label poolLabel) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, label.errorf(nil, field, format, args...))
	}
	if err := checkName(p.Name); err != nil {
		bad("name", "%q %v", p.Name, err)
	}
	if _, err := provider.Lookup(p.Provider); err != nil {
		bad("provider", "%v", err)
	}
	if h := p.Headroom; h != nil && !(*h > 0 && *h <= 1) {
		bad("headroom", "%v must be within (0, 1]", *h)
	}
	if len(p.Limits) == 0 && p.Concurrent == 0 {
		bad("limits", "a pool needs at least one limit or a concurrent cap")
	}
	if len(p.Limits) > MaxLimits {
		bad("limits", "%d limits; at most %d are allowed", len(p.Limits), MaxLimits)
	}
	type key struct {
		resource string
		per      Period
	}
	first := make(map[key]int, len(p.Limits))
	for i, l := range p.Limits {
		path := fmt.Sprintf("limits[%d]", i)
		for _, msg := range l.problems() {
			bad(path+msg.field, "%s", msg.text)
		}
		k := key{l.Resource, l.Per}
		if j, dup := first[k]; dup {
			bad(path, "%s per %v repeats limits[%d]", l.Resource, l.Per, j)
		} else {
			first[k] = i
		}
	}
	if p.Concurrent < 0 || p.Concurrent > MaxConcurrent {
		bad("concurrent", "%d must be within [0, %d] (0 means no cap)", p.Concurrent, MaxConcurrent)
	}
	if d := p.LeaseTTL; d != nil && (*d < Duration(MinLeaseTTL) || *d > Duration(MaxLeaseTTL)) {
		bad("lease_ttl", "%v must be within [%v, %v]", *d, MinLeaseTTL, MaxLeaseTTL)
	}
	if d := p.TombstoneTTL; d != nil && (*d < Duration(MinTombstone) || *d > Duration(MaxTombstone)) {
		bad("tombstone_ttl", "%v must be within [%v, %v]", *d, MinTombstone, MaxTombstone)
	}
	if n := p.MaxWaiters; n != nil && (*n < 1 || *n > MaxWaiters) {
		bad("max_waiters", "%d must be within [1, %d]", *n, MaxWaiters)
	}
	if n := p.MaxOutputTokens; n != nil && (*n < 0 || *n > MaxAmount) {
		bad("max_output_tokens", "%d must be within [0, %d]", *n, int64(MaxAmount))
	}
	if r := p.CharsPerToken; r != nil && !(*r >= 0.5 && *r <= 100) {
		bad("chars_per_token", "%v must be within [0.5, 100]", *r)
	}
	if d := p.QuotaExhaustedFor; d != nil && (*d < 0 || *d > Duration(MaxTombstone)) {
		bad("quota_exhausted_for", "%v must be within [0, %v]", *d, MaxTombstone)
	}
	if p.MaxQueueWait < 0 {
		bad("max_queue_wait", "%v must not be negative (0 means no bound)", p.MaxQueueWait)
	}
	if len(p.Tenants) > MaxTenants {
		bad("tenants", "%d tenants; at most %d are allowed", len(p.Tenants), MaxTenants)
	}
	for _, name := range slices.Sorted(maps.Keys(p.Tenants)) {
		path := fmt.Sprintf("tenants[%q]", name)
		if err := checkName(name); err != nil {
			bad(path, "%q %v", name, err)
		}
		if w := p.Tenants[name].Weight; w != nil && (*w < 1 || *w > MaxWeight) {
			bad(path+".weight", "%d must be within [1, %d]", *w, MaxWeight)
		}
	}
	if len(errs) == 0 {
		// The schema's bounds are meant to imply the engine's; this catches any gap.
		if err := p.Limiter().Validate(); err != nil {
			bad("", "%v", err)
		}
	}
	return errors.Join(errs...)
}

type problem struct{ field, text string }

// problems lists what is wrong with l; field is relative to the limit (".amount").
func (l Limit) problems() []problem {
	var ps []problem
	add := func(field, format string, args ...any) {
		ps = append(ps, problem{field, fmt.Sprintf(format, args...)})
	}
	if _, err := limiter.ParseResource(l.Resource); err != nil {
		add(".resource", "%q is not requests, tokens, input_tokens or output_tokens", l.Resource)
	}
	amountOK := l.Amount > 0 && l.Amount <= MaxAmount
	switch {
	case l.Amount <= 0:
		add(".amount", "%d must be positive", l.Amount)
	case l.Amount > MaxAmount:
		add(".amount", "%d must be at most %d", l.Amount, int64(MaxAmount))
	}
	perOK := time.Duration(l.Per) >= MinPeriod && time.Duration(l.Per) <= MaxPeriod
	if !perOK {
		add(".per", "%v must be within [%v, %v]", time.Duration(l.Per), MinPeriod, MaxPeriod)
	}
	if b := l.Burst; b != nil && (*b <= 0 || *b > MaxAmount) {
		add(".burst", "%d must be within [1, %d]", *b, int64(MaxAmount))
	} else if b != nil && amountOK && perOK {
		if refill := float64(*b) / float64(l.Amount) * float64(l.Per); refill > float64(MaxRefill) {
			add(".burst", "%d at %d per %v takes %v to refill; at most %v is allowed", *b, l.Amount, l.Per, time.Duration(refill).Round(time.Hour), MaxRefill)
		}
	}
	if f := l.Initial; f != nil && !(*f >= 0 && *f <= 1) {
		add(".initial", "%v must be empty, full or a fraction within [0, 1]", float64(*f))
	}
	return ps
}

// checkName reports why s is not a usable pool or tenant name.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("is %d bytes; at most %d are allowed", len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("contains %q; names are printable and have no whitespace", r)
		}
	}
	return nil
}
