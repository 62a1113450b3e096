package tokens

import (
	"strings"
	"testing"
)

func TestLoadRanksVerifiesHash(t *testing.T) {
	for _, s := range []spec{cl100k, o200k} {
		ranks, err := loadRanks(s.vocab, s.sha256)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(ranks) < 100000 {
			t.Errorf("%s: %d ranks, want at least 100000", s.name, len(ranks))
		}
		wrong := strings.Repeat("0", 64)
		if _, err := loadRanks(s.vocab, wrong); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
			t.Errorf("%s with wrong hash: err = %v, want sha256 mismatch", s.name, err)
		}
	}
	if _, err := loadRanks("missing.tiktoken", cl100k.sha256); err == nil {
		t.Error("missing vocabulary: no error")
	}
}

func TestParseRanks(t *testing.T) {
	ranks, err := parseRanks([]byte("YQ== 0\nYg== 1\n\n"))
	if err != nil || len(ranks) != 2 || ranks["a"] != 0 || ranks["b"] != 1 {
		t.Fatalf("parseRanks = %v, %v", ranks, err)
	}
	for _, bad := range []string{"YQ==", "!!! 0", "YQ== x"} {
		if _, err := parseRanks([]byte(bad)); err == nil {
			t.Errorf("parseRanks(%q): no error", bad)
		}
	}
}
