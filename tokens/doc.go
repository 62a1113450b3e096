// Package tokens counts LLM tokens for quota admission.
//
// OpenAI models are counted exactly with tiktoken's BPE (github.com/pkoukk/tiktoken-go),
// using vocabularies embedded in the binary and verified by SHA-256 when first
// loaded: the package never reads a cache directory or touches the network.
// Counts equal Python tiktoken's encode_ordinary (see testdata/vectors.json).
// Other models (Anthropic, Google, unknown names) get a characters-per-token
// estimate, marked Estimated. So does text with a run of over 512 bytes without
// a break (e.g. 100 KB of one letter), which is counted in chunks because
// tiktoken-go's merge is quadratic in the length of such a run.
//
// Building an encoder costs tens to hundreds of milliseconds and 10-25 MB of
// heap, so each encoding is built at most once per process, lazily on first use
// or eagerly with Warm, and then shared by all Counters. Everything in this
// package is safe for concurrent use.
package tokens
