package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/quotad/quotad/provider"
)

// Size caps on raw input, checked before parsing.
const (
	MaxPoolSize = 64 << 10 // one pool: an etcd value or a CLI file
	MaxFileSize = 64 << 20 // a configuration file
)

// ParsePool decodes one pool from YAML or JSON and validates it. key is the name
// the pool is stored under (an etcd key without its prefix, or a CLI argument):
// when the value has no name the pool takes key, and when both are set they must
// be equal. key may be empty.
func ParsePool(data []byte, key string) (Pool, error) {
	label := poolLabel{name: key, index: -1}
	if len(data) > MaxPoolSize {
		return Pool{}, label.errorf(nil, "", "value is %d bytes; at most %d are allowed", len(data), MaxPoolSize)
	}
	root, err := parseDocument(data)
	if err != nil {
		return Pool{}, label.errorf(nil, "", "%v", err)
	}
	if root == nil {
		return Pool{}, label.errorf(nil, "", "value is empty")
	}
	p, err := decodePool(root, label)
	if err != nil {
		return Pool{}, err
	}
	switch {
	case p.Name == "" && key != "":
		p.Name = key
	case key != "" && p.Name != key:
		return Pool{}, label.errorf(nil, "name", "%q differs from the key %q", p.Name, key)
	}
	if err := p.Validate(); err != nil {
		return Pool{}, err
	}
	return p, nil
}

// ParseFile decodes a configuration file (YAML, or JSON) and validates it. It
// reports every problem found, joined with errors.Join. An empty file is an error,
// so that a file caught while being rewritten never reads as "no pools"; a file
// without pools says so with "pools: []".
func ParseFile(data []byte) (File, error) {
	if len(data) > MaxFileSize {
		return File{}, fmt.Errorf("file is %d bytes; at most %d are allowed", len(data), MaxFileSize)
	}
	root, err := parseDocument(data)
	if err != nil {
		return File{}, err
	}
	if root == nil {
		return File{}, errors.New("file is empty (write \"pools: []\" for a configuration without pools)")
	}
	f, index, err := decodeFile(root)
	if err = errors.Join(err, validatePools(f.Pools, index)); err != nil {
		return File{}, err
	}
	return f, nil
}

// ReadFile reads and parses the configuration file at path.
func ReadFile(path string) (File, error) {
	data, err := readCapped(path)
	if err != nil {
		return File{}, err
	}
	f, err := ParseFile(data)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// readCapped reads path, refusing more than MaxFileSize bytes.
func readCapped(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil && fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// UnmarshalYAML decodes a pool strictly, without validating it.
func (p *Pool) UnmarshalYAML(n *yaml.Node) error {
	v, err := decodePool(n, poolLabel{index: -1})
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// UnmarshalJSON decodes a pool strictly, without validating it.
func (p *Pool) UnmarshalJSON(data []byte) error {
	root, err := parseDocument(data)
	if err != nil {
		return err
	}
	if root == nil {
		return nil // JSON null: no change, as encoding/json does
	}
	return p.UnmarshalYAML(root)
}

// UnmarshalYAML decodes a file strictly, without validating it.
func (f *File) UnmarshalYAML(n *yaml.Node) error {
	v, _, err := decodeFile(n)
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// parseDocument parses one YAML or JSON document and returns its root node, or
// nil for an empty document.
func parseDocument(data []byte) (*yaml.Node, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		var err error
		if data, err = normalizeJSON(data); err != nil {
			return nil, err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid YAML: more than one document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	return root, nil
}

// normalizeJSON checks that data is one JSON value and re-encodes it with only
// the escapes YAML also knows (JSON allows "\/", YAML does not), keeping key order
// and repeated keys so that the YAML decoder sees them.
func normalizeJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		n      int // tokens seen inside the container
	}
	var (
		out   bytes.Buffer
		stack []frame
		done  bool
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		if done {
			return nil, errors.New("invalid JSON: data after the top-level value")
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			out.WriteByte(byte(d))
			done = len(stack) == 0
			continue
		}
		if len(stack) > 0 {
			f := &stack[len(stack)-1]
			switch {
			case f.object && f.n%2 == 1:
				out.WriteByte(':')
			case f.n > 0:
				out.WriteByte(',')
			}
			f.n++
		}
		switch t := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(t))
			stack = append(stack, frame{object: t == '{'})
		case string:
			b, _ := json.Marshal(t)
			out.Write(b)
		case json.Number:
			out.WriteString(t.String())
		case bool:
			out.WriteString(strconv.FormatBool(t))
		case nil:
			out.WriteString("null")
		}
		done = len(stack) == 0
	}
	return out.Bytes(), nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// decodeFile decodes a file's top level and its pools. It returns the pools that
// decode, each with its position in the file, and every problem found.
func decodeFile(root *yaml.Node) (f File, index []int, err error) {
	sawPools := false
	err = mapping(root, poolLabel{index: -1}, "", []string{"pools", "server"}, func(key string, v *yaml.Node, path string) error {
		switch key {
		case "pools":
			sawPools = true
			if v.Kind != yaml.SequenceNode {
				return poolLabel{index: -1}.errorf(v, path, "must be a list of pools, not %s (write pools: [] for none)", describe(v))
			}
			f.Pools = make([]Pool, 0, len(v.Content))
			var errs []error
			for i, item := range v.Content {
				p, err := decodePool(item, poolLabel{index: i})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				f.Pools = append(f.Pools, p)
				index = append(index, i)
			}
			return errors.Join(errs...)
		case "server":
			// Owned by the daemon; only its shape is checked here.
			if v.Kind != yaml.MappingNode && v.ShortTag() != "!!null" {
				return poolLabel{index: -1}.errorf(v, path, "must be a mapping, not %s", describe(v))
			}
		}
		return nil
	})
	if err == nil && !sawPools {
		err = poolLabel{index: -1}.errorf(root, "pools", "missing (write pools: [] for none)")
	}
	return f, index, err
}

var (
	poolFields = []string{"name", "provider", "headroom", "limits", "concurrent", "lease_ttl", "tombstone_ttl", "max_waiters", "max_queue_wait", "shadow", "tenants",
		"max_output_tokens", "chars_per_token", "count_cache_reads", "quota_exhausted_for"}
	limitFields  = []string{"resource", "amount", "per", "burst", "initial"}
	tenantFields = []string{"weight"}
)

// decodePool decodes one pool mapping. It stops at the first problem: what
// follows a malformed field is rarely worth reporting.
func decodePool(n *yaml.Node, label poolLabel) (Pool, error) {
	n = deref(n)
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := deref(n.Content[i]), deref(n.Content[i+1]); k.Value == "name" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				label.name = v.Value
			}
		}
	}
	var p Pool
	err := mapping(n, label, "", poolFields, func(key string, v *yaml.Node, path string) error {
		switch key {
		case "name":
			return decodeString(label, v, path, &p.Name)
		case "provider":
			var s string
			err := decodeString(label, v, path, &s)
			p.Provider = provider.Name(s)
			return err
		case "headroom":
			p.Headroom = new(float64)
			return decodeFloat(label, v, path, p.Headroom)
		case "limits":
			if v.Kind != yaml.SequenceNode {
				return label.errorf(v, path, "must be a list, not %s", describe(v))
			}
			if len(v.Content) > MaxLimits {
				return label.errorf(v, path, "%d limits; at most %d are allowed", len(v.Content), MaxLimits)
			}
			p.Limits = make([]Limit, len(v.Content))
			for i, item := range v.Content {
				if err := decodeLimit(label, item, fmt.Sprintf("%s[%d]", path, i), &p.Limits[i]); err != nil {
					return err
				}
			}
		case "concurrent":
			return decodeInt(label, v, path, &p.Concurrent)
		case "lease_ttl":
			p.LeaseTTL = new(Duration)
			return decodeDuration(label, v, path, p.LeaseTTL)
		case "tombstone_ttl":
			p.TombstoneTTL = new(Duration)
			return decodeDuration(label, v, path, p.TombstoneTTL)
		case "max_waiters":
			p.MaxWaiters = new(int64)
			return decodeInt(label, v, path, p.MaxWaiters)
		case "max_queue_wait":
			return decodeDuration(label, v, path, &p.MaxQueueWait)
		case "shadow":
			return decodeBool(label, v, path, &p.Shadow)
		case "count_cache_reads":
			return decodeBool(label, v, path, &p.CountCacheReads)
		case "max_output_tokens":
			p.MaxOutputTokens = new(int64)
			return decodeInt(label, v, path, p.MaxOutputTokens)
		case "chars_per_token":
			p.CharsPerToken = new(float64)
			return decodeFloat(label, v, path, p.CharsPerToken)
		case "quota_exhausted_for":
			p.QuotaExhaustedFor = new(Duration)
			return decodeDuration(label, v, path, p.QuotaExhaustedFor)
		case "tenants":
			return decodeTenants(label, v, path, &p.Tenants)
		}
		return nil
	})
	return p, err
}

func decodeLimit(label poolLabel, n *yaml.Node, path string, l *Limit) error {
	return mapping(n, label, path, limitFields, func(key string, v *yaml.Node, path string) error {
		switch key {
		case "resource":
			return decodeString(label, v, path, &l.Resource)
		case "amount":
			return decodeInt(label, v, path, &l.Amount)
		case "per":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				return label.errorf(v, path, "%s is neither second, minute, hour, day nor a duration like 10s", describe(v))
			}
			p, err := parsePeriod(v.Value)
			if err != nil {
				return label.errorf(v, path, "%v", err)
			}
			l.Per = p
		case "burst":
			l.Burst = new(int64)
			return decodeInt(label, v, path, l.Burst)
		case "initial":
			l.Initial = new(Fraction)
			return decodeFraction(label, v, path, l.Initial)
		}
		return nil
	})
}

func decodeTenants(label poolLabel, n *yaml.Node, path string, out *map[string]Tenant) error {
	if n = deref(n); n.Kind == yaml.MappingNode && len(n.Content)/2 > MaxTenants {
		return label.errorf(n, path, "%d tenants; at most %d are allowed", len(n.Content)/2, MaxTenants)
	}
	m := make(map[string]Tenant)
	err := mapping(n, label, path, nil, func(name string, v *yaml.Node, _ string) error {
		tpath := fmt.Sprintf("%s[%q]", path, name)
		var t Tenant
		err := mapping(v, label, tpath, tenantFields, func(_ string, v *yaml.Node, path string) error {
			t.Weight = new(int64)
			return decodeInt(label, v, path, t.Weight)
		})
		m[name] = t
		return err
	})
	*out = m
	return err
}

// mapping calls each for every key of the mapping n, in order. known lists the
// accepted keys; nil accepts any.
func mapping(n *yaml.Node, label poolLabel, path string, known []string, each func(key string, v *yaml.Node, path string) error) error {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return label.errorf(n, path, "must be a mapping, not %s", describe(n))
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.ShortTag() == "!!merge" {
			return label.errorf(k, path, "merge keys (<<) are not supported")
		}
		if k.Kind != yaml.ScalarNode {
			return label.errorf(k, path, "a key must be a string, not %s", describe(k))
		}
		kpath := k.Value
		if path != "" {
			kpath = path + "." + k.Value
		}
		if known != nil && !contains(known, k.Value) {
			return label.errorf(k, kpath, "unknown field (known: %s)", strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return label.errorf(k, kpath, "repeated key")
		}
		seen[k.Value] = true
		if err := each(k.Value, v, kpath); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// describe names a node for an error message: its value for a scalar, its kind
// otherwise.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!null":
			return "null"
		}
		return n.Value
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "an unexpected node"
}

func decodeString(label poolLabel, v *yaml.Node, path string, out *string) error {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		return label.errorf(v, path, "%s is not a string", describe(v))
	}
	*out = v.Value
	return nil
}

// decodeInt accepts integers, and floats with no fractional part ("1e6").
func decodeBool(label poolLabel, v *yaml.Node, path string, out *bool) error {
	if v.ShortTag() != "!!bool" {
		return label.errorf(v, path, "%s is not true or false", describe(v))
	}
	return v.Decode(out)
}

func decodeInt(label poolLabel, v *yaml.Node, path string, out *int64) error {
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!int":
			if err := v.Decode(out); err == nil {
				return nil
			}
			return label.errorf(v, path, "%s is out of range", v.Value)
		case "!!float":
			var f float64
			if err := v.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				*out = int64(f)
				return nil
			}
			return label.errorf(v, path, "%s is not a whole number", v.Value)
		}
	}
	return label.errorf(v, path, "%s is not a whole number", describe(v))
}

func decodeFloat(label poolLabel, v *yaml.Node, path string, out *float64) error {
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!float") {
		if err := v.Decode(out); err == nil {
			return nil
		}
	}
	return label.errorf(v, path, "%s is not a number", describe(v))
}

func decodeDuration(label poolLabel, v *yaml.Node, path string, out *Duration) error {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
		if d, err := time.ParseDuration(v.Value); err == nil {
			*out = Duration(d)
			return nil
		}
	}
	return label.errorf(v, path, "%s is not a duration like 90s or 5m", describe(v))
}

func decodeFraction(label poolLabel, v *yaml.Node, path string, out *Fraction) error {
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!str":
			switch v.Value {
			case "empty":
				*out = Empty
				return nil
			case "full":
				*out = Full
				return nil
			}
		case "!!int", "!!float":
			var f float64
			if err := v.Decode(&f); err == nil {
				*out = Fraction(f)
				return nil
			}
		}
	}
	return label.errorf(v, path, "%s is not empty, full or a fraction within [0, 1]", describe(v))
}
