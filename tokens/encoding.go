package tokens

// Encoding names.
const (
	CL100kBase   = "cl100k_base"
	O200kBase    = "o200k_base"
	O200kHarmony = "o200k_harmony" // o200k_base ranks and pattern plus chat-format special tokens
)

// spec describes one BPE encoding as Python tiktoken defines it
// (tiktoken_ext/openai_public.py). Encoders are built from specs with
// tiktoken.NewCoreBPE rather than tiktoken.GetEncoding, so tiktoken-go's
// process-wide BPE loader, which downloads missing vocabularies without
// checking them, is neither used nor replaced.
type spec struct {
	name    string
	vocab   string         // file in tiktoken-go-loader's embedded assets
	sha256  string         // the expected_hash Python tiktoken checks
	pattern string         // pre-tokenisation regex, in regexp2 (.NET) syntax
	special map[string]int // required by NewCoreBPE; counting treats them as text
}

// The patterns are Python tiktoken's, rewritten for regexp2 with identical
// matching: possessive quantifiers become atomic groups, "$" (end of text in
// Rust regex) becomes `\z`, and the case-insensitive contractions are spelled
// out with Unicode simple case folding ("ſ" folds to "s"), which regexp2's
// case-insensitive mode does not apply. The specs are read-only.
var (
	cl100k = spec{
		name:   CL100kBase,
		vocab:  "cl100k_base.tiktoken",
		sha256: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
		pattern: `'(?:[sSſdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])` +
			`|(?>[^\r\n\p{L}\p{N}]?)(?>\p{L}+)` +
			`|(?>\p{N}{1,3})` +
			`| ?(?>[^\s\p{L}\p{N}]+)(?>[\r\n]*)` +
			`|(?>\s+)\z` +
			`|\s*[\r\n]` +
			`|\s+(?!\S)` +
			`|\s`,
		special: map[string]int{
			"<|endoftext|>":   100257,
			"<|fim_prefix|>":  100258,
			"<|fim_middle|>":  100259,
			"<|fim_suffix|>":  100260,
			"<|endofprompt|>": 100276,
		},
	}
	o200k = spec{
		name:   O200kBase,
		vocab:  "o200k_base.tiktoken",
		sha256: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
		pattern: `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` + o200kContraction +
			`|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` + o200kContraction +
			`|\p{N}{1,3}` +
			`| ?[^\s\p{L}\p{N}]+[\r\n/]*` +
			`|\s*[\r\n]+` +
			`|\s+(?!\S)` +
			`|\s+`,
		special: map[string]int{
			"<|endoftext|>":   199999,
			"<|endofprompt|>": 200018,
		},
	}
)

const o200kContraction = `(?:'(?:[sSſ]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))?`
