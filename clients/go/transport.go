package quotad

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Bounds on what the Transport holds in memory for one call.
const (
	// maxRequestBody: a larger request body is passed through without a grant.
	maxRequestBody = 32 << 20
	// maxErrorBody: how much of an error response is read for its error type.
	maxErrorBody = 64 << 10
)

// Transport is an http.RoundTripper that puts an OpenAI- or Anthropic-shaped
// HTTP client under quotad's limits without changing a call site: give it to the
// SDK as the transport of its *http.Client.
//
// For POST requests to a path ending in /chat/completions, /responses or
// /embeddings (OpenAI, Azure OpenAI and compatible APIs) or /messages
// (Anthropic), it reads the JSON body (model, messages or input, system prompt,
// max_tokens or its variants, n) and Acquires a grant in its pool with the
// prompt, so that quotad counts the tokens and reserves what the provider will
// charge. It then sends the request, reads the usage from the response and
// Reports it with the provider's rate-limit headers:
//
//   - 2xx: OutcomeSuccess with the usage of the JSON body, or of a stream
//     (OpenAI's final usage chunk, sent when the request sets
//     stream_options.include_usage; the Responses API's response.completed
//     event; Anthropic's message_start and message_delta events). The Report is
//     sent when the body has been read to its end or closed (that Read or Close
//     returns once it is sent), and streams are read as they pass, never held.
//     Usage the response does not give (a stream without usage, a body closed
//     early) is reported as the estimate quotad reserved;
//   - 429: OutcomeRateLimited with the retry-after, and the error's type or
//     code as the provider error (insufficient_quota makes the pool fail fast);
//   - other statuses: OutcomeFailed with the error's type or code;
//   - a transport error before the request was written: OutcomeNotSent; after:
//     OutcomeFailed.
//
// The request body is read once and given to the base transport from memory.
// Requests it does not understand (other paths and methods, bodies that are not
// JSON or name no model, bodies over 32 MiB) pass through untouched, without a
// grant. The grant's lease is renewed while the call runs, so close every
// response body, as net/http requires: the Report is sent then.
//
// When the Acquire fails (quotad unreachable with a fail-closed Client, a max
// wait exceeded, a spent quota), RoundTrip returns its error and sends nothing.
// A Transport is safe for concurrent use.
type Transport struct {
	client *Client
	pool   string
	base   http.RoundTripper
	opts   []AcquireOption
}

// NewTransport returns a Transport that acquires in pool through c and sends
// requests with base (nil means http.DefaultTransport). opts apply to every
// Acquire, typically WithTenant and WithMaxWait; each call draws its own
// request id and sends its own prompt, whatever opts say.
func NewTransport(c *Client, pool string, base http.RoundTripper, opts ...AcquireOption) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{client: c, pool: pool, base: base, opts: opts}
}

// CloseIdleConnections closes the idle connections of the base transport, if
// it has such a method; http.Client.CloseIdleConnections calls it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper: see Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := routeOf(req.URL.Path)
	if req.Method != http.MethodPost || a == 0 || req.Body == nil || req.Body == http.NoBody {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
	if err != nil {
		req.Body.Close()
		return nil, fmt.Errorf("quotad transport: read request body: %w", err)
	}
	if len(body) > maxRequestBody {
		out := req.Clone(req.Context())
		out.Body = readCloser{io.MultiReader(bytes.NewReader(body), req.Body), req.Body}
		return t.base.RoundTrip(out)
	}
	req.Body.Close()
	call, ok := parseCall(a, req.URL.Path, body)
	if !ok {
		return t.base.RoundTrip(withBody(req.Context(), req, body))
	}

	opts := slices.Concat(t.opts, call.acquireOptions(), []AcquireOption{WithRequestID(newRequestID())})
	g, err := t.client.Acquire(req.Context(), t.pool, call.cost(), opts...)
	if err != nil {
		return nil, fmt.Errorf("quotad transport: %s %s: %w", req.Method, req.URL.Path, err)
	}
	rep := &reporter{g: g, ctx: context.WithoutCancel(req.Context())}

	// Whether the request was written decides whether a failure counts.
	var wrote atomic.Bool
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	resp, err := t.base.RoundTrip(withBody(ctx, req, body))
	if err != nil {
		outcome := OutcomeFailed
		if !wrote.Load() {
			outcome = OutcomeNotSent
		}
		rep.report(Usage{}, outcome)
		return nil, err
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	rep.headers = resp.Header
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		resp.Body = newUsageBody(resp, rep)
	case resp.StatusCode == http.StatusTooManyRequests:
		providerErr := peekProviderError(resp)
		rep.report(Usage{}, OutcomeRateLimited, WithRetryAfter(retryAfterOf(resp.Header, time.Now())), WithProviderError(providerErr))
	default:
		providerErr := peekProviderError(resp)
		rep.report(Usage{}, OutcomeFailed, WithProviderError(providerErr))
	}
	return resp, nil
}

// withBody returns a copy of req with ctx that sends body.
func withBody(ctx context.Context, req *http.Request, body []byte) *http.Request {
	out := req.Clone(ctx)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	return out
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// reporter sends the Report of one call.
type reporter struct {
	g       *Grant
	ctx     context.Context // the request's values, without its cancellation
	headers http.Header     // the response's, once there is one
}

// report settles the grant. The caller has nothing to do with a failed Report
// (the lease runs out and the estimate stands), so its error is dropped.
func (r *reporter) report(u Usage, outcome Outcome, opts ...ReportOption) {
	ctx, cancel := context.WithTimeout(r.ctx, reportTimeout)
	defer cancel()
	opts = append(opts, outcome)
	if r.headers != nil {
		opts = append(opts, WithHeaders(r.headers))
	}
	_ = r.g.Report(ctx, u, opts...)
}

// peekProviderError reads the start of an error response for its error type or
// code, and puts back what it read: the caller reads the whole body, or the
// error that cut it short.
func peekProviderError(resp *http.Response) string {
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var rest io.Reader = resp.Body
	if err != nil {
		rest = errReader{err}
	}
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), rest), resp.Body}
	return providerError(head)
}

// errReader fails every Read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// retryAfterOf reads the provider's retry hint: retry-after-ms (Azure, OpenAI),
// then retry-after in seconds or as an HTTP date (read against the response's
// Date, so clocks need not agree). It returns 0 when there is none.
func retryAfterOf(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < float64(24*time.Hour/time.Millisecond) {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < (24*time.Hour).Seconds() {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	return max(at.Sub(now), 0)
}
