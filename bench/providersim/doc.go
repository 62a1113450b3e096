// Package providersim is an HTTP server that behaves like the rate limiters of
// LLM providers as they document them, so that a 429 from it means a 429 from
// the provider. Benchmarks point clients (or quotad) at it and read back what
// it admitted.
//
// # Buckets
//
// Every API key and model has its own pool of continuously refilling buckets
// (capacity = Burst, default Limit; refill = Limit/Period, spread evenly; a new
// pool starts full). Arithmetic is exact to the nanosecond. A request is admitted
// only if every bucket of its pool holds its whole charge; then all are debited
// at once, otherwise nothing is. When the response completes (or the client goes
// away) the charge is settled to the actual usage: the difference is refunded or
// charged, a refund never filling a bucket past capacity, a charge possibly
// putting it into debt. A request whose charge exceeds a bucket's capacity can
// never be admitted and is refused at once.
//
// # OpenAI (POST /v1/chat/completions)
//
// The key is the Authorization bearer token. Buckets: requests (RPM) and tokens
// (TPM). The charge is 1 request and prompt + n × cap tokens, where prompt is
// ceil(characters/4) over the text content of all messages (code points; image
// and other non-text parts count nothing) and cap is max_completion_tokens, else
// max_tokens, else Config.DefaultMaxTokens. The response's prompt_tokens is
// that same estimate; completion_tokens is the drawn output of every choice.
//
// Every admitted or refused request carries x-ratelimit-{limit,remaining,reset}-
// {requests,tokens} describing the buckets right after the admission decision
// (remaining in whole tokens, never negative; reset = time until the bucket is
// full, rounded up to the millisecond, as a Go duration: "1s", "1.75s", "6m0s").
// A refusal is a 429 with the OpenAI error body (type "requests" when the
// request bucket refuses, else "tokens"; code "rate_limit_exceeded"), where Used
// is the capacity minus the level rounded up, and "try again in" is the time
// until every refusing bucket holds enough, rounded up to the millisecond; the
// same wait is in retry-after (whole seconds, rounded up) and retry-after-ms
// (rounded up). A request too large to ever fit gets a 429 "Request too large"
// without retry-after. Keys in Config.QuotaExhaustedKeys get a 429 of type
// insufficient_quota, without retry-after.
//
// POST /v1/responses shares the buckets of Chat Completions: the prompt is the
// instructions and the text of the input, the cap is max_output_tokens, n is 1;
// it answers a response object, or response.* events when streamed.
//
// Error messages name the limits "per min" whatever the Period, as the
// providers' do.
//
// With "stream": true the response is server-sent events of
// chat.completion.chunk objects: a role chunk per choice, content chunks of up
// to 8 tokens, a finish chunk per choice, a usage chunk with empty choices when
// stream_options.include_usage is set, then "data: [DONE]".
//
// # Anthropic (POST /v1/messages)
//
// The key is the x-api-key header. Buckets: requests (RPM), input tokens (ITPM)
// and output tokens (OTPM). The charge is 1 request, ceil(characters/4) input
// tokens over the system prompt and all message text, and max_tokens output
// tokens; settlement charges the actual output (input_tokens equals the
// estimate; cache tokens are always 0). Headers anthropic-ratelimit-
// {requests,input-tokens,output-tokens,tokens}-{limit,remaining,reset}: token
// remaining values are rounded to the nearest thousand (half up); reset is the
// RFC 3339 UTC time, rounded up to the second, at which the bucket is full;
// tokens-* repeat whichever of input and output tokens has less remaining. A
// refusal is a 429 rate_limit_error with retry-after (whole seconds, rounded up),
// none when the request can never fit. With "stream": true the response is the
// Anthropic event stream: message_start (usage.input_tokens), content_block_start,
// content_block_delta per up to 8 tokens, content_block_stop, message_delta
// (usage.output_tokens) and message_stop.
//
// # Responses
//
// An admitted response has an output length drawn uniformly from a seeded
// generator (see Output), one filler word per token, and completes
// TimeToFirstToken + N × PerOutputToken after admission (see Latency); streams
// deliver each chunk when its last token is due. Malformed requests get a 400
// (oversized bodies 413, a missing key 401) with the provider's error body and
// are not recorded.
//
// # Records
//
// GET /sim/stats returns Stats: totals, per-second series and per-pool records
// of admissions, refusals by reason and admitted (estimated) and settled
// (actual) tokens. GET /sim/events returns the event log, POST /sim/reset
// refills every bucket and clears the records. Server.Stats, Server.Events and
// Server.Reset do the same in Go.
//
// The time source is Config.Clock, so tests drive the buckets and the latency
// with a fake clock.
package providersim
