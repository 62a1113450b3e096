package tokens

import (
	"math"
	"strings"
	"sync"
	"testing"
)

func TestEstimateForUnknownModels(t *testing.T) {
	c := newTestCounter(t)
	for _, tc := range []struct {
		text string
		want int64
	}{
		{"", 0},
		{"abc", 1},
		{"abcd", 1},
		{"abcde", 2},
		{"日本語の", 1}, // 4 characters, 12 bytes
	} {
		got, err := c.CountText("", tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if got != (Count{Tokens: tc.want, Estimated: true}) {
			t.Errorf("CountText(%q) = %+v, want %d estimated", tc.text, got, tc.want)
		}
	}

	c2, err := NewCounter(WithCharsPerToken(2.5))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c2.CountText("", strings.Repeat("x", 10)); got.Tokens != 4 || !got.Estimated {
		t.Errorf("2.5 chars/token on 10 chars = %+v, want 4 estimated", got)
	}

	msgs := []Message{{Role: "user", Content: "hello world!"}, {Role: "assistant", Content: "hi", Name: "bot"}}
	// 4+12+9+2+3 = 30 characters -> 8 tokens; overhead 3+3+1+3 = 10.
	if got, _ := c.CountMessages("", msgs); got.Tokens != 18 || !got.Estimated || got.Encoding != "" {
		t.Errorf("estimated messages = %+v, want 18 estimated", got)
	}
}

func TestNewCounterRejectsBadRatio(t *testing.T) {
	for _, r := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := NewCounter(WithCharsPerToken(r)); err == nil {
			t.Errorf("WithCharsPerToken(%v): no error", r)
		}
	}
}

func TestCharEstimate(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int64
	}{
		{"", 0}, {"a", 1}, {"abcd", 1}, {"abcde", 2},
		{"日本語の日", 2},    // 5 characters (15 bytes)
		{"👍🏽", 1},       // 2 code points
		{"\xff\xfe", 1}, // invalid bytes count one each
	} {
		if got := CharEstimate(tc.text); got != tc.want {
			t.Errorf("CharEstimate(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}

func TestCountMessagesEmpty(t *testing.T) {
	got, err := newTestCounter(t).CountMessages(O200kBase, nil)
	if err != nil || got.Tokens != tokensReplyPrime {
		t.Errorf("no messages = %+v, %v; want %d", got, err, tokensReplyPrime)
	}
}

func TestInvalidUTF8CountsAsReplacementCharacter(t *testing.T) {
	c := newTestCounter(t)
	for _, model := range []string{CL100kBase, O200kBase} {
		bad, err1 := c.CountText(model, "a\xffb\xc3")
		good, err2 := c.CountText(model, "a\uFFFDb\uFFFD")
		if err1 != nil || err2 != nil || bad != good {
			t.Errorf("%s: invalid UTF-8 = %+v, U+FFFD = %+v (%v, %v)", model, bad, good, err1, err2)
		}
	}
}

// Runs longer than maxRunBytes are counted in chunks: close to the exact
// count, flagged Estimated, and linear rather than quadratic in time.
func TestLongRunsAreChunked(t *testing.T) {
	c := newTestCounter(t)
	for _, text := range []string{
		strings.Repeat("a", 3000),
		strings.Repeat(" ", 3000) + "x",
		strings.Repeat("日本", 600),
		strings.Repeat("!?", 1500),
	} {
		for _, model := range []string{CL100kBase, O200kBase} {
			got, err := c.CountText(model, text)
			if err != nil {
				t.Fatal(err)
			}
			enc, _ := sharedEncoder(got.Encoding)
			exact := int64(len(enc.tk.EncodeOrdinary(text)))
			cuts := int64(len(text) / maxRunBytes)
			slack := 3 * cuts // a cut splits at most a few tokens
			if !got.Estimated || got.Tokens < exact-slack || got.Tokens > exact+slack {
				t.Errorf("%s %q...: got %+v, exact %d, allowed ±%d", model, text[:6], got, exact, slack)
			}
		}
	}
	for n, want := range map[int]bool{maxRunBytes: false, maxRunBytes + 1: true} {
		if got, _ := c.CountText(O200kBase, strings.Repeat("a", n)); got.Estimated != want {
			t.Errorf("run of %d bytes: Estimated = %v, want %v", n, got.Estimated, want)
		}
	}
	// 200 KB of one letter: close to a minute unchunked, milliseconds chunked.
	if got, _ := c.CountText(O200kBase, strings.Repeat("a", 200<<10)); got.Tokens == 0 {
		t.Error("no tokens for a long run")
	}
}

func TestConcurrentCounting(t *testing.T) {
	c := newTestCounter(t)
	v := loadVectors(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i, tc := range v.Texts {
				enc := Encodings()[(g+i)%len(Encodings())]
				got, err := c.CountText(enc, tc.Text)
				if err != nil || got.Tokens != tc.Counts[enc] {
					t.Errorf("goroutine %d, %s/%s: got %+v, %v; want %d", g, tc.Name, enc, got, err, tc.Counts[enc])
				}
			}
		})
	}
	wg.Wait()
}

func TestWarm(t *testing.T) {
	if err := Warm(); err != nil {
		t.Fatal(err)
	}
	if err := Warm(O200kBase, O200kHarmony); err != nil {
		t.Fatal(err)
	}
	if err := Warm("p50k_base"); err == nil {
		t.Error("Warm(p50k_base): no error")
	}
}
