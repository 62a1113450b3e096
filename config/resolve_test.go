package config

import (
	"testing"
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/provider"
)

func TestLimiterDefaults(t *testing.T) {
	p, err := ParsePool([]byte(`
name: p
limits:
  - {resource: requests, amount: 10, per: second}
  - {resource: tokens, amount: 1000, per: minute}
  - {resource: tokens, amount: 5000, per: 61s}
  - {resource: input_tokens, amount: 9, per: day}
  - {resource: output_tokens, amount: 9, per: day, initial: empty}
  - {resource: output_tokens, amount: 9, per: minute, initial: 0.5}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Limiter()
	want := []limiter.Limit{
		{Resource: limiter.Requests, Amount: 10, Period: time.Second, Capacity: 10, Initial: 0},
		{Resource: limiter.Tokens, Amount: 1000, Period: time.Minute, Capacity: 1000, Initial: 0},
		{Resource: limiter.Tokens, Amount: 5000, Period: 61 * time.Second, Capacity: 5000, Initial: 1},
		{Resource: limiter.InputTokens, Amount: 9, Period: 24 * time.Hour, Capacity: 9, Initial: 1},
		{Resource: limiter.OutputTokens, Amount: 9, Period: 24 * time.Hour, Capacity: 9, Initial: 0},
		{Resource: limiter.OutputTokens, Amount: 9, Period: time.Minute, Capacity: 9, Initial: 0.5},
	}
	if len(cfg.Limits) != len(want) {
		t.Fatalf("limits %+v", cfg.Limits)
	}
	for i := range want {
		if cfg.Limits[i] != want[i] {
			t.Errorf("limits[%d] = %+v, want %+v", i, cfg.Limits[i], want[i])
		}
	}
	if cfg.LeaseTTL != time.Minute || cfg.TombstoneTTL != time.Hour || cfg.MaxWaiters != 10000 ||
		cfg.MaxQueueWait != 0 || cfg.Concurrent != 0 || cfg.Shadow || cfg.TenantWeights != nil {
		t.Errorf("defaults %+v", cfg)
	}
	if p.Style().Name() != provider.Generic {
		t.Errorf("provider %q", p.Style().Name())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLimiterHeadroom(t *testing.T) {
	tests := []struct {
		headroom     float64
		amount       int64
		burst        int64
		wantAmount   int64
		wantCapacity int64
	}{
		{0.95, 500, 500, 475, 475},
		{0.95, 20, 20, 19, 19},
		{0.9, 10, 2, 9, 1},          // 1.8 rounds down
		{0.29, 100, 100, 29, 29},    // 0.29*100 is 28.999... in floating point
		{0.5, 1, 1, 1, 1},           // never below 1
		{0.1, 3, 7, 1, 1},           // 0.3 and 0.7 round down, then up to 1
		{1, 1e15, 1e15, 1e15, 1e15}, // largest values, unscaled
		{0.999999999, 1e15, 1e15, 999999999000000, 999999999000000},
		{0.7, 1e15, 3, 7e14, 2},
	}
	for _, tt := range tests {
		p := Pool{Name: "p", Headroom: new(tt.headroom), Limits: []Limit{{Resource: "tokens", Amount: tt.amount, Per: Period(time.Minute), Burst: new(tt.burst)}}}
		if err := p.Validate(); err != nil {
			t.Fatalf("%+v: %v", tt, err)
		}
		l := p.Limiter().Limits[0]
		if l.Amount != tt.wantAmount || l.Capacity != tt.wantCapacity {
			t.Errorf("headroom %v of %d/%d = %d/%d, want %d/%d", tt.headroom, tt.amount, tt.burst, l.Amount, l.Capacity, tt.wantAmount, tt.wantCapacity)
		}
	}
}

func TestCanonicalIsDeepCopy(t *testing.T) {
	p := Pool{Name: "p", Headroom: new(0.5), Limits: []Limit{{Resource: "tokens", Amount: 5, Per: Period(time.Minute)}},
		Tenants: map[string]Tenant{"a": {Weight: new(int64(2))}}}
	c := p.Canonical()
	*c.Headroom = 0.25
	c.Limits[0].Amount = 9
	*c.Tenants["a"].Weight = 7
	c.Tenants["b"] = Tenant{}
	if *p.Headroom != 0.5 || p.Limits[0].Amount != 5 || *p.Tenants["a"].Weight != 2 || len(p.Tenants) != 1 {
		t.Fatalf("Canonical shares state with its receiver: %+v", p)
	}
	if !p.Equal(p.Canonical()) {
		t.Fatal("a pool differs from its canonical form")
	}
}

func TestEqual(t *testing.T) {
	a := Pool{Name: "p", Limits: []Limit{
		{Resource: "tokens", Amount: 5, Per: Period(time.Minute)},
		{Resource: "requests", Amount: 1, Per: Period(time.Second)},
	}}
	b := Pool{Name: "p", Provider: provider.Generic, Headroom: new(1.0), Limits: []Limit{
		{Resource: "requests", Amount: 1, Per: Period(time.Second), Burst: new(int64(1)), Initial: new(Empty)},
		{Resource: "tokens", Amount: 5, Per: Period(time.Minute)},
	}}
	if !a.Equal(b) {
		t.Fatal("defaults written out or limits reordered should not matter")
	}
	b.Limits[1].Amount = 6
	if a.Equal(b) {
		t.Fatal("different amounts compare equal")
	}
}

func TestNewSnapshot(t *testing.T) {
	s, err := NewSnapshot([]Pool{{Name: "a", Concurrent: 1}, {Name: "b", Concurrent: 2}}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pools) != 2 || s.Version != "v1" || *s.Pools["a"].LeaseTTL != Duration(time.Minute) {
		t.Fatalf("snapshot %+v", s)
	}
	if _, err := NewSnapshot([]Pool{{Name: "a", Concurrent: 1}, {Name: "a", Concurrent: 2}}, "v2"); err == nil {
		t.Fatal("duplicate names accepted")
	}
}
