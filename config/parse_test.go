package config

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/quotad/quotad/provider"
)

const validPool = `
name: openai/prod
limits:
  - resource: requests
    amount: 500
    per: minute
`

func TestParsePoolErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		key  string
		want []string // each must appear in the error
	}{
		{"negative amount", "name: openai/prod\nlimits:\n  - {resource: requests, amount: 5, per: second}\n  - {resource: tokens, amount: -5, per: minute}\n",
			"", []string{`pool "openai/prod": limits[1].amount: -5 must be positive`}},
		{"amount too large", "name: p\nlimits: [{resource: tokens, amount: 1e16, per: minute}]",
			"", []string{`pool "p": limits[0].amount: 10000000000000000 must be at most 1000000000000000`}},
		{"fractional amount", "name: p\nlimits: [{resource: tokens, amount: 1.5, per: minute}]",
			"", []string{`pool "p": limits[0].amount: 1.5 is not a whole number (line 2)`}},
		{"string amount", "name: p\nlimits: [{resource: tokens, amount: lots, per: minute}]",
			"", []string{`limits[0].amount: "lots" is not a whole number`}},
		{"unknown resource", "name: p\nlimits: [{resource: tokenz, amount: 1, per: minute}]",
			"", []string{`pool "p": limits[0].resource: "tokenz" is not requests, tokens, input_tokens or output_tokens`}},
		{"bad period word", "name: p\nlimits: [{resource: tokens, amount: 1, per: fortnight}]",
			"", []string{`pool "p": limits[0].per: "fortnight" is neither second, minute, hour, day nor a duration like 10s`}},
		{"numeric period", "name: p\nlimits: [{resource: tokens, amount: 1, per: 60}]",
			"", []string{`limits[0].per: 60 is neither`}},
		{"period too short", "name: p\nlimits: [{resource: tokens, amount: 1, per: 10us}]",
			"", []string{`pool "p": limits[0].per: 10µs must be within [1ms, 744h0m0s]`}},
		{"missing period", "name: p\nlimits: [{resource: tokens, amount: 1}]",
			"", []string{`pool "p": limits[0].per: 0s must be within`}},
		{"zero burst", "name: p\nlimits: [{resource: tokens, amount: 1, per: minute, burst: 0}]",
			"", []string{`pool "p": limits[0].burst: 0 must be within [1, 1000000000000000]`}},
		{"burst refill too long", "name: p\nlimits: [{resource: tokens, amount: 1, per: day, burst: 1000}]",
			"", []string{`pool "p": limits[0].burst: 1000 at 1 per day takes 24000h0m0s to refill`}},
		{"initial out of range", "name: p\nlimits: [{resource: tokens, amount: 1, per: minute, initial: 1.5}]",
			"", []string{`pool "p": limits[0].initial: 1.5 must be empty, full or a fraction within [0, 1]`}},
		{"initial word", "name: p\nlimits: [{resource: tokens, amount: 1, per: minute, initial: half}]",
			"", []string{`pool "p": limits[0].initial: "half" is not empty, full or a fraction within [0, 1]`}},
		{"duplicate limit", "name: p\nlimits:\n- {resource: tokens, amount: 1, per: minute}\n- {resource: tokens, amount: 2, per: 60s}",
			"", []string{`pool "p": limits[1]: tokens per minute repeats limits[0]`}},
		{"no limits", "name: p", "", []string{`pool "p": limits: a pool needs at least one limit or a concurrent cap`}},
		{"headroom zero", "name: p\nheadroom: 0\nconcurrent: 1", "", []string{`pool "p": headroom: 0 must be within (0, 1]`}},
		{"headroom above one", "name: p\nheadroom: 1.2\nconcurrent: 1", "", []string{`pool "p": headroom: 1.2 must be within (0, 1]`}},
		{"headroom nan", "name: p\nheadroom: .nan\nconcurrent: 1", "", []string{`pool "p": headroom: NaN must be within (0, 1]`}},
		{"provider", "name: p\nprovider: gemini\nconcurrent: 1", "", []string{`pool "p": provider: "gemini" is not a provider (want generic, openai, azure, anthropic)`}},
		{"empty name", "concurrent: 1", "", []string{`name: "" must not be empty`}},
		{"name whitespace", "name: a b\nconcurrent: 1", "", []string{`pool "a b": name: "a b" contains ' '`}},
		{"name too long", "name: " + strings.Repeat("x", 257) + "\nconcurrent: 1", "", []string{`name: "xxx`, `is 257 bytes; at most 256 are allowed`}},
		{"name not a string", "name: 12\nconcurrent: 1", "", []string{`name: 12 is not a string`}},
		{"name differs from key", validPool, "openai/dev", []string{`pool "openai/dev": name: "openai/prod" differs from the key "openai/dev"`}},
		{"lease ttl short", "name: p\nconcurrent: 1\nlease_ttl: 100ms", "", []string{`pool "p": lease_ttl: 100ms must be within [1s, 1h0m0s]`}},
		{"lease ttl number", "name: p\nconcurrent: 1\nlease_ttl: 60", "", []string{`pool "p": lease_ttl: 60 is not a duration like 90s or 5m (line 3)`}},
		{"tombstone ttl", "name: p\nconcurrent: 1\ntombstone_ttl: 0s", "", []string{`pool "p": tombstone_ttl: 0s must be within [1s, 168h0m0s]`}},
		{"max waiters", "name: p\nconcurrent: 1\nmax_waiters: 0", "", []string{`pool "p": max_waiters: 0 must be within [1, 1000000]`}},
		{"max queue wait negative", "name: p\nconcurrent: 1\nmax_queue_wait: -1s", "", []string{`pool "p": max_queue_wait: -1s must not be negative`}},
		{"concurrent negative", "name: p\nconcurrent: -1", "", []string{`pool "p": concurrent: -1 must be within [0, 100000]`}},
		{"shadow not bool", "name: p\nconcurrent: 1\nshadow: yes", "", []string{`pool "p": shadow: "yes" is not true or false`}},
		{"tenant weight", "name: p\nconcurrent: 1\ntenants: {web: {weight: 0}}", "", []string{`pool "p": tenants["web"].weight: 0 must be within [1, 1000000]`}},
		{"tenant weight big", "name: p\nconcurrent: 1\ntenants: {web: {weight: 2000000}}", "", []string{`tenants["web"].weight: 2000000 must be within`}},
		{"tenant unknown field", "name: p\nconcurrent: 1\ntenants: {web: {wieght: 2}}", "", []string{`pool "p": tenants["web"].wieght: unknown field (known: weight)`}},
		{"unknown field", "name: p\nconcurrent: 1\nburst: 3", "", []string{`pool "p": burst: unknown field (known: name, provider,`, "(line 3)"}},
		{"unknown limit field", "name: p\nlimits: [{resource: tokens, amount: 1, per: minute, bursts: 2}]", "", []string{`pool "p": limits[0].bursts: unknown field (known: resource, amount, per, burst, initial)`}},
		{"repeated key", "name: p\nconcurrent: 1\nconcurrent: 2", "", []string{`pool "p": concurrent: repeated key`}},
		{"merge key", "name: p\n<<: {concurrent: 1}", "", []string{`pool "p": merge keys (<<) are not supported`}},
		{"not a mapping", "- a\n- b", "k", []string{`pool "k": must be a mapping, not a list`}},
		{"limits not a list", "name: p\nlimits: {resource: tokens}", "", []string{`pool "p": limits: must be a list, not a mapping`}},
		{"empty", "  \n", "k", []string{`pool "k": value is empty`}},
		{"syntax", "name: [", "k", []string{`pool "k": invalid YAML`}},
		{"two documents", "name: p\nconcurrent: 1\n---\nname: q\n", "", []string{`more than one document`}},
		{"json unknown field", `{"name": "p", "concurrent": 1, "extra": true}`, "", []string{`pool "p": extra: unknown field`}},
		{"json repeated key", `{"name": "p", "concurrent": 1, "concurrent": 2}`, "", []string{`pool "p": concurrent: repeated key`}},
		{"json syntax", `{"name": "p",}`, "", []string{`invalid JSON`}},
		{"json trailing", `{"name": "p", "concurrent": 1} {}`, "", []string{`data after the top-level value`}},
		{"json string amount", `{"name": "p", "limits": [{"resource": "tokens", "amount": "5", "per": "minute"}]}`, "", []string{`pool "p": limits[0].amount: "5" is not a whole number`}},
		{"oversized", "name: p\nconcurrent: 1\n#" + strings.Repeat("x", MaxPoolSize), "k", []string{`pool "k": value is 65559 bytes; at most 65536 are allowed`}},
		{"several problems", "name: p\nheadroom: 2\nlimits: [{resource: tokens, amount: 0, per: minute}]", "", []string{
			`pool "p": headroom: 2 must be within (0, 1]`, `pool "p": limits[0].amount: 0 must be positive`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePool([]byte(tt.in), tt.key)
			if err == nil {
				t.Fatalf("ParsePool accepted %q", tt.in)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FieldError", err)
			}
		})
	}
}

func TestParsePoolYAMLAndJSON(t *testing.T) {
	y := `
name: openai/prod/gpt-4o-mini
provider: openai
headroom: 0.95
limits:
  - resource: requests
    amount: 500
    per: minute
    burst: 500
    initial: empty
  - resource: tokens
    amount: 2e5
    per: 1m
  - resource: requests
    amount: 10_000
    per: day
    initial: 0.25
concurrent: 64
lease_ttl: 30s
tombstone_ttl: 2h
max_waiters: 100
max_queue_wait: 5m
shadow: true
tenants:
  web: {weight: 3}
  batch: {}
`
	j := `{
	"name": "openai\/prod\/gpt-4o-mini",
	"provider": "openai",
	"headroom": 0.95,
	"limits": [
		{"resource": "requests", "amount": 500, "per": "minute", "burst": 500, "initial": "empty"},
		{"resource": "tokens", "amount": 200000, "per": "60s"},
		{"resource": "requests", "amount": 10000, "per": "24h", "initial": 0.25}
	],
	"concurrent": 64,
	"lease_ttl": "30s",
	"tombstone_ttl": "2h",
	"max_waiters": 100,
	"max_queue_wait": "5m",
	"shadow": true,
	"tenants": {"web": {"weight": 3}, "batch": {}}
}`
	py, err := ParsePool([]byte(y), "")
	if err != nil {
		t.Fatal(err)
	}
	pj, err := ParsePool([]byte(j), "openai/prod/gpt-4o-mini")
	if err != nil {
		t.Fatal(err)
	}
	if !py.Equal(pj) {
		t.Fatalf("YAML and JSON differ:\n%+v\n%+v", py.Canonical(), pj.Canonical())
	}
	if py.Style().Name() != provider.OpenAI || py.Limits[1].Amount != 200000 || py.Limits[2].Amount != 10000 {
		t.Fatalf("decoded %+v", py)
	}
	cfg := py.Limiter()
	if cfg.Concurrent != 64 || cfg.LeaseTTL != 30*time.Second || cfg.TombstoneTTL != 2*time.Hour ||
		cfg.MaxWaiters != 100 || cfg.MaxQueueWait != 5*time.Minute || !cfg.Shadow {
		t.Fatalf("resolved %+v", cfg)
	}
	if cfg.TenantWeights["web"] != 3 || cfg.TenantWeights["batch"] != 1 || len(cfg.TenantWeights) != 2 {
		t.Fatalf("tenant weights %v", cfg.TenantWeights)
	}
}

func TestParsePoolNameFromKey(t *testing.T) {
	p, err := ParsePool([]byte("limits: [{resource: requests, amount: 5, per: second}]"), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "demo" {
		t.Fatalf("name %q", p.Name)
	}
	if _, err := ParsePool([]byte(validPool), "openai/prod"); err != nil {
		t.Fatalf("same name in key and value: %v", err)
	}
}

func TestParseFile(t *testing.T) {
	good := "server: {listen: \":7070\"}\npools:\n" + indent(validPool) + "\n  - name: b\n    concurrent: 1\n"
	f, err := ParseFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Pools) != 2 || f.Pools[0].Name != "openai/prod" || f.Pools[1].Name != "b" {
		t.Fatalf("pools %+v", f.Pools)
	}
	if f, err := ParseFile([]byte("pools: []")); err != nil || len(f.Pools) != 0 {
		t.Fatalf("empty list: %v %v", f, err)
	}

	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty file", "", []string{"file is empty"}},
		{"comments only", "# nothing\n", []string{"file is empty"}},
		{"no pools key", "server: {}\n", []string{"pools: missing"}},
		{"null pools", "pools:\n", []string{"pools: must be a list of pools, not null"}},
		{"unknown top-level", "pools: []\nlimits: []\n", []string{"limits: unknown field (known: pools, server) (line 2)"}},
		{"server not a mapping", "pools: []\nserver: 3\n", []string{"server: must be a mapping, not 3"}},
		{"duplicate names", "pools:\n- {name: a, concurrent: 1}\n- {name: a, concurrent: 2}\n", []string{`pool "a": name: "a" is already used by pools[0]`}},
		{"unnamed pool", "pools:\n- {concurrent: 1}\n", []string{`pools[0]: name: "" must not be empty`}},
		{"every pool reported", "pools:\n- {name: a, concurrent: -1}\n- {name: b, concurrent: x}\n- {name: c}\n", []string{
			`pool "a": concurrent: -1`, `pool "b": concurrent: "x" is not a whole number (line 3)`, `pool "c": limits: a pool needs`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseFile accepted %q", tt.in)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
				}
			}
		})
	}
}

func TestParseFileAnchors(t *testing.T) {
	in := `
pools:
  - name: a
    limits: &rpm
      - {resource: requests, amount: 60, per: minute}
  - name: b
    limits: *rpm
`
	f, err := ParseFile([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Pools[1].Limits) != 1 || f.Pools[1].Limits[0].Amount != 60 {
		t.Fatalf("alias not resolved: %+v", f.Pools[1])
	}
}

func TestExampleFile(t *testing.T) {
	f, err := ReadFile("../examples/quotad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range f.Pools {
		names[p.Name] = true
	}
	for _, n := range []string{"openai/prod/gpt-4o-mini", "anthropic/prod/claude-sonnet", "demo"} {
		if !names[n] {
			t.Errorf("example lacks pool %q", n)
		}
	}
}

func TestReadFileTooLarge(t *testing.T) {
	path := t.TempDir() + "/big.yaml"
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	ins := []string{
		validPool,
		"name: x\nconcurrent: 3\n",
		"name: y\nprovider: anthropic\nheadroom: 0.5\nlimits:\n- {resource: output_tokens, amount: 7, per: 1500ms, burst: 3, initial: 0.125}\n- {resource: input_tokens, amount: 9, per: hour}\ntenants: {a: {weight: 2}, b: {}}\nmax_queue_wait: 1m30s\nshadow: true\n",
	}
	for _, in := range ins {
		p, err := ParsePool([]byte(in), "")
		if err != nil {
			t.Fatal(err)
		}
		c := p.Canonical()
		y, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range [][]byte{y, j} {
			q, err := ParsePool(out, "")
			if err != nil {
				t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
			}
			if !q.Equal(p) {
				t.Fatalf("round trip changed the pool:\n%s", out)
			}
			if !canonicalEqualBytes(t, q.Canonical(), c) {
				t.Fatalf("canonical form not stable:\n%s", out)
			}
		}
	}
}

func canonicalEqualBytes(t *testing.T, a, b Pool) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return string(x) == string(y)
}

func TestCanonicalMarshal(t *testing.T) {
	p, err := ParsePool([]byte("name: d\nlimits:\n- {resource: tokens, amount: 5, per: day}\n- {resource: requests, amount: 10, per: second, burst: 2}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := yaml.Marshal(p.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	want := `name: d
provider: generic
headroom: 1
limits:
    - resource: requests
      amount: 10
      per: second
      burst: 2
      initial: empty
    - resource: tokens
      amount: 5
      per: day
      burst: 5
      initial: full
lease_ttl: 1m0s
tombstone_ttl: 1h0m0s
max_waiters: 10000
max_output_tokens: 1024
chars_per_token: 4
quota_exhausted_for: 10m0s
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		if i == 0 {
			lines[i] = "  - " + l
		} else {
			lines[i] = "    " + l
		}
	}
	return strings.Join(lines, "\n")
}

func TestUnmarshalEmbedded(t *testing.T) {
	// How the daemon reads the same file with its own server section.
	var daemon struct {
		Server map[string]any `yaml:"server"`
		Pools  []Pool         `yaml:"pools"`
	}
	in := "server: {listen: \":7070\"}\npools:\n- {name: a, concurrent: 1, lease_ttl: 5s}\n"
	if err := yaml.Unmarshal([]byte(in), &daemon); err != nil {
		t.Fatal(err)
	}
	if len(daemon.Pools) != 1 || *daemon.Pools[0].LeaseTTL != Duration(5*time.Second) {
		t.Fatalf("pools %+v", daemon.Pools)
	}
	err := yaml.Unmarshal([]byte("pools:\n- {name: a, concurent: 1}\n"), &daemon)
	if err == nil || !strings.Contains(err.Error(), `pool "a": concurent: unknown field`) {
		t.Fatalf("got %v", err)
	}

	var p Pool
	if err := json.Unmarshal([]byte(`{"name": "j", "limits": [{"resource": "tokens", "amount": 3, "per": "hour"}]}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "j" || p.Limits[0].Per != Period(time.Hour) {
		t.Fatalf("pool %+v", p)
	}
	if err := json.Unmarshal([]byte(`{"name": "j", "per": "hour"}`), &p); err == nil {
		t.Fatal("unknown JSON field accepted")
	}

	var f File
	if err := yaml.Unmarshal([]byte("server:\npools: []\n"), &f); err != nil {
		t.Fatalf("empty server section: %v", err)
	}
}

func TestTokenSettingsValidated(t *testing.T) {
	for _, tc := range []struct{ field, value, want string }{
		{"max_output_tokens", "-1", "max_output_tokens: -1 must be within"},
		{"chars_per_token", "0.1", "chars_per_token: 0.1 must be within [0.5, 100]"},
		{"quota_exhausted_for", "-5s", "quota_exhausted_for: -5s must be within"},
		{"count_cache_reads", "maybe", "count_cache_reads"},
	} {
		doc := "name: p\nlimits: [{resource: tokens, amount: 10, per: minute}]\n" + tc.field + ": " + tc.value + "\n"
		_, err := ParsePool([]byte(doc), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.field, err, tc.want)
		}
	}
}
