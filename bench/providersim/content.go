package providersim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// maxOutputCap bounds an output cap (max_tokens and the like) so that a request
// cannot make the simulator generate unbounded text.
const maxOutputCap = 1 << 20

// textChars counts the characters (code points) of a message content: a JSON
// string, null, or an array of parts whose "text" fields count (other parts,
// such as images, count nothing).
func textChars(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return 0, nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("content: %w", err)
		}
		return runes(s), nil
	case raw[0] == '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return 0, fmt.Errorf("content parts: %w", err)
		}
		var n int64
		for _, p := range parts {
			n += runes(p.Text)
		}
		return n, nil
	default:
		return 0, errors.New("content must be a string or an array of content parts")
	}
}

// outputCap validates an optional output cap named name, returning def when absent.
func outputCap(name string, v *int64, def int64) (int64, error) {
	switch {
	case v == nil:
		return def, nil
	case *v < 1:
		return 0, fmt.Errorf("%s must be at least 1, got %d", name, *v)
	case *v > maxOutputCap:
		return 0, fmt.Errorf("%s must be at most %d, got %d", name, maxOutputCap, *v)
	}
	return *v, nil
}
