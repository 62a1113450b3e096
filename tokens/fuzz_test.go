package tokens

import "testing"

// FuzzCountText checks that counting never panics, is deterministic, and is
// zero exactly for empty text, for every encoding and for the estimate.
func FuzzCountText(f *testing.F) {
	for _, tc := range loadVectors(f).Texts {
		if len(tc.Text) < 1024 {
			f.Add(tc.Text)
		}
	}
	f.Add("\xff\xfe<|endoftext|>\r\n \u2028")
	c := newTestCounter(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, model := range []string{CL100kBase, O200kBase, O200kHarmony, ""} {
			a, err := c.CountText(model, text)
			if err != nil {
				t.Fatalf("%s: %v", model, err)
			}
			b, err := c.CountText(model, text)
			if err != nil || a != b {
				t.Fatalf("%s: not deterministic: %+v then %+v (%v)", model, a, b, err)
			}
			if (a.Tokens == 0) != (text == "") || a.Tokens < 0 {
				t.Fatalf("%s: %d tokens for %d bytes", model, a.Tokens, len(text))
			}
			// A token covers at least one byte; an invalid byte is counted
			// as U+FFFD, three bytes.
			if a.Tokens > int64(3*len(text)) {
				t.Fatalf("%s: %d tokens for %d bytes", model, a.Tokens, len(text))
			}
		}
	})
}
