// Package quotad is the Go client of quotad, a rate-limit decision service that
// keeps a fleet of callers of one LLM provider key under the provider's limits.
//
// Before each provider call, Acquire a grant for the call's cost in a pool (one
// provider limit, such as "openai/prod/gpt-4o-mini"); Acquire blocks until quotad
// grants it. After the call, Report the grant with the usage the provider returned,
// so that quotad settles its estimate. Do does both around a function.
//
// While a grant is open, the client renews its lease in the background, so a long
// call keeps its reservation; Report ends the renewal. Every Grant must be Reported
// exactly once (OutcomeNotSent when the call was never made).
//
// A Client talks to one node at a time. When a node is unavailable it moves to the
// next address and retries with the same request id, which quotad uses to charge a
// retried call once. When no node can be reached the client fails closed
// (ErrUnavailable) unless WithFailOpen gave it a local limiter to fall back on.
//
// Transport does all of this for an OpenAI- or Anthropic-shaped HTTP client
// (the official SDKs take an *http.Client): it reads each request's prompt and
// output cap, acquires with the prompt so that quotad counts the tokens, and
// reports the response's usage and rate-limit headers.
//
// This package does not import any server or cluster code of quotad: only gRPC
// and the generated API.
package quotad
