package tokens

import (
	"errors"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
)

// encoder counts tokens of one encoding. It is immutable and safe for
// concurrent use (tiktoken's CoreBPE only reads its maps and regexp2.Regexp
// is goroutine-safe).
type encoder struct {
	tk *tiktoken.Tiktoken
}

// maxRunBytes bounds the length of a run of same-class characters (letters,
// whitespace or punctuation) that is handed to tiktoken in one piece.
// tiktoken-go's byte-pair merge is quadratic in the piece length (a 40 KB run
// of one letter takes seconds), so longer runs are cut and counted in chunks,
// keeping counting linear in the text length. Natural text has no such runs;
// when it does, the count may differ from tiktoken's by a few tokens per cut.
const maxRunBytes = 512

// count returns the number of tokens Python tiktoken's encode_ordinary gives:
// special-token text such as "<|endoftext|>" is counted as ordinary text.
// Invalid UTF-8 is counted as if each invalid byte were U+FFFD. exact is false
// when a run longer than maxRunBytes had to be cut.
func (e *encoder) count(text string) (n int64, exact bool) {
	exact = true
	start, runStart, runClass := 0, 0, classNumber
	for i, r := range text {
		c := classOf(r)
		if c != runClass || c == classNumber {
			runStart, runClass = i, c
			continue
		}
		if i-runStart >= maxRunBytes {
			n += int64(len(e.tk.EncodeOrdinary(text[start:i])))
			start, runStart, exact = i, i, false
		}
	}
	if start < len(text) {
		n += int64(len(e.tk.EncodeOrdinary(text[start:])))
	}
	return n, exact
}

type runeClass uint8

const (
	classNumber runeClass = iota // \p{N}: pre-tokenised in groups of at most 3
	classLetter                  // \p{L} and \p{M}
	classSpace                   // \s
	classOther                   // everything else: punctuation, symbols, emoji
)

func classOf(r rune) runeClass {
	switch {
	case r < utf8.RuneSelf && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'):
		return classLetter
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsLetter(r) || unicode.IsMark(r):
		return classLetter
	}
	return classOther
}

// build loads and verifies the vocabulary and compiles the encoder. It is
// expensive (tens to hundreds of milliseconds, 10-25 MB of heap); callers go
// through sharedEncoder.
func build(s spec) (*encoder, error) {
	ranks, err := loadRanks(s.vocab, s.sha256)
	if err != nil {
		return nil, err
	}
	bpe, err := tiktoken.NewCoreBPE(ranks, s.special, s.pattern)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", s.name, err)
	}
	specialSet := make(map[string]any, len(s.special))
	for k := range s.special {
		specialSet[k] = true
	}
	enc := &tiktoken.Encoding{Name: s.name, PatStr: s.pattern, MergeableRanks: ranks, SpecialTokens: s.special}
	return &encoder{tk: tiktoken.NewTiktoken(bpe, enc, specialSet)}, nil
}

// shared holds the process-wide encoders, each built at most once, on first
// use. The map is never modified; the sync.OnceValues functions it holds are
// the package's only mutable global state. A build error is permanent (the
// vocabularies are embedded, so retrying cannot help).
var shared = map[string]func() (*encoder, error){
	CL100kBase: sync.OnceValues(func() (*encoder, error) { return build(cl100k) }),
	O200kBase:  sync.OnceValues(func() (*encoder, error) { return build(o200k) }),
}

// aliases maps encodings that count ordinary text identically to the encoder
// that serves them.
var aliases = map[string]string{O200kHarmony: O200kBase}

// sharedEncoder returns the shared encoder for an encoding name, building it
// on first use. Safe for concurrent use; concurrent first callers wait for a
// single build.
func sharedEncoder(encoding string) (*encoder, error) {
	if base, ok := aliases[encoding]; ok {
		encoding = base
	}
	get, ok := shared[encoding]
	if !ok {
		return nil, fmt.Errorf("unknown encoding %q", encoding)
	}
	enc, err := get()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", encoding, err)
	}
	return enc, nil
}

// Encodings lists the encoding names this package counts exactly.
func Encodings() []string {
	return []string{CL100kBase, O200kBase, O200kHarmony}
}

// Warm builds the named encoders now, in parallel, so that the first request
// does not pay the start-up cost; with no arguments it builds all of them.
// It is safe to call concurrently and more than once.
func Warm(encodings ...string) error {
	if len(encodings) == 0 {
		encodings = Encodings()
	}
	errs := make([]error, len(encodings))
	var wg sync.WaitGroup
	for i, name := range encodings {
		wg.Go(func() {
			_, errs[i] = sharedEncoder(name)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tokens: warm: %w", err)
	}
	return nil
}
