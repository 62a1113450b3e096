package tokens

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// loadRanks reads the embedded vocabulary file, checks its SHA-256 against
// wantSHA256 and parses it into the token-bytes -> rank map tiktoken expects.
// A hash mismatch or a malformed line is an error; there is no fallback.
func loadRanks(file, wantSHA256 string) (map[string]int, error) {
	data, err := assets.Assets.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read embedded vocabulary %s: %w", file, err)
	}
	if err := checkSHA256(data, wantSHA256); err != nil {
		return nil, fmt.Errorf("vocabulary %s: %w", file, err)
	}
	ranks, err := parseRanks(data)
	if err != nil {
		return nil, fmt.Errorf("parse vocabulary %s: %w", file, err)
	}
	return ranks, nil
}

func checkSHA256(data []byte, want string) error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("sha256 mismatch: got %s, want %s", got, want)
	}
	return nil
}

// parseRanks parses the .tiktoken format: one "base64(token) rank" per line.
func parseRanks(data []byte) (map[string]int, error) {
	ranks := make(map[string]int, bytes.Count(data, []byte{'\n'}))
	for n, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		tok, rank, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return nil, fmt.Errorf("line %d: missing rank", n+1)
		}
		b, err := base64.StdEncoding.DecodeString(string(tok))
		if err != nil {
			return nil, fmt.Errorf("line %d: token: %w", n+1, err)
		}
		r, err := strconv.Atoi(string(rank))
		if err != nil {
			return nil, fmt.Errorf("line %d: rank: %w", n+1, err)
		}
		ranks[string(b)] = r
	}
	return ranks, nil
}
