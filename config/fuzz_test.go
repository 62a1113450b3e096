package config

import (
	"encoding/json"
	"testing"

	"gopkg.in/yaml.v3"
)

func FuzzParsePool(f *testing.F) {
	f.Add([]byte(validPool), "")
	f.Add([]byte(validPool), "openai/prod")
	f.Add([]byte("limits: [{resource: tokens, amount: 1e6, per: 1m30s, burst: 7, initial: 0.5}]\nheadroom: 0.3\nconcurrent: 2\ntenants: {a: {weight: 9}}"), "k")
	f.Add([]byte(`{"name": "a\/b", "concurrent": 1, "max_queue_wait": "1s", "shadow": true}`), "")
	f.Add([]byte("name: &a x\nconcurrent: *a"), "")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		p, err := ParsePool(data, key)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted pool does not validate: %v", err)
		}
		if err := p.Limiter().Validate(); err != nil {
			t.Fatalf("accepted pool resolves to an invalid engine config: %v", err)
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
			q, err := ParsePool(out, p.Name)
			if err != nil {
				t.Fatalf("canonical form\n%s\ndoes not parse: %v", out, err)
			}
			if !q.Equal(p) {
				t.Fatalf("round trip through\n%s\nchanged the pool", out)
			}
		}
	})
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte("pools:\n" + indent(validPool)))
	f.Add([]byte("server: {}\npools: []"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("accepted file does not validate: %v", err)
		}
	})
}
