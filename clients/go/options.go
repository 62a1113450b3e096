package quotad

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// DefaultUnavailableTimeout is how long a call keeps retrying while no node of
// quotad answers, unless WithUnavailableTimeout says otherwise. It rides through a
// node failure and the takeover of its pools by another node.
const DefaultUnavailableTimeout = 10 * time.Second

// An Option configures a Client at Dial.
type Option func(*dialConfig)

type dialConfig struct {
	creds              credentials.TransportCredentials
	grpcOpts           []grpc.DialOption
	unavailableTimeout time.Duration
	failOpen           bool
	failOpenRate       float64
	failOpenBurst      int
}

func defaultDialConfig() dialConfig {
	return dialConfig{
		creds:              insecure.NewCredentials(),
		unavailableTimeout: DefaultUnavailableTimeout,
	}
}

func (c *dialConfig) validate() error {
	if c.unavailableTimeout <= 0 {
		return fmt.Errorf("%w: unavailable timeout %v must be positive", ErrInvalid, c.unavailableTimeout)
	}
	if c.failOpen && !(c.failOpenRate > 0) {
		return fmt.Errorf("%w: fail-open rate %v must be positive: a fail-open client is never unlimited", ErrInvalid, c.failOpenRate)
	}
	if c.failOpen && c.failOpenBurst < 1 {
		return fmt.Errorf("%w: fail-open burst %d must be at least 1", ErrInvalid, c.failOpenBurst)
	}
	return nil
}

// WithTransportCredentials sets the credentials of the connections to quotad,
// for example credentials.NewTLS(cfg) for TLS or mTLS. The default is insecure
// (plain text).
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *dialConfig) { c.creds = creds }
}

// WithDialOptions adds gRPC dial options (interceptors, keepalive, ...) to every
// connection the client makes.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.grpcOpts = append(c.grpcOpts, opts...) }
}

// WithUnavailableTimeout sets how long one call keeps retrying, across all
// addresses, while no node answers, before quotad counts as unreachable: then the
// call fails with ErrUnavailable, or an Acquire falls back to the fail-open
// limiter. Once quotad counts as unreachable, later calls try each address once
// only, until a node answers again. A call's context can end it sooner.
func WithUnavailableTimeout(d time.Duration) Option {
	return func(c *dialConfig) { c.unavailableTimeout = d }
}

// WithFailOpen makes Acquire fall back to a local limiter when quotad cannot be
// reached, instead of failing with ErrUnavailable. The local limiter grants
// ratePerSecond requests per second with bursts of up to burst requests (token
// counts are not limited locally); it is per Client, so set it to this process's
// share of the provider limit. Dial rejects a rate of 0 or less: a client never
// fails open to unlimited. Grants made locally have Grant.Local set.
func WithFailOpen(ratePerSecond float64, burst int) Option {
	return func(c *dialConfig) {
		c.failOpen = true
		c.failOpenRate = ratePerSecond
		c.failOpenBurst = burst
	}
}

// An AcquireOption configures one Acquire (or Do).
type AcquireOption func(*acquireConfig)

type acquireConfig struct {
	tenant    string
	maxWait   time.Duration
	hasWait   bool
	requestID string

	// What WithPrompt and its companions set; see prompt.go.
	model        string
	prompt       *quotadv1.Prompt
	maxOutput    int64
	hasMaxOutput bool
	completions  int64
}

// WithTenant names who asks inside the pool (a service name); waiting tenants
// share a pool by weight. The default is the tenant "".
func WithTenant(tenant string) AcquireOption {
	return func(c *acquireConfig) { c.tenant = tenant }
}

// WithMaxWait sets how long Acquire may wait for the grant, in total across
// retries. Zero means try only. When quotad predicts a longer wait, Acquire
// returns a *NotGrantedError at once. Without this option Acquire waits until its
// context ends.
func WithMaxWait(d time.Duration) AcquireOption {
	return func(c *acquireConfig) { c.maxWait, c.hasWait = d, true }
}

// WithRequestID sets the idempotency key of the Acquire: a call repeated with
// the same id (after a crash or a timeout, say) attaches to the same waiter or
// returns the same grant, and is charged once. By default each Acquire draws a
// random id, which it reuses across its own retries.
func WithRequestID(id string) AcquireOption {
	return func(c *acquireConfig) { c.requestID = id }
}

// A ReportOption configures one Report. An Outcome is a ReportOption.
type ReportOption interface {
	applyReport(*reportConfig)
}

type reportConfig struct {
	outcome       Outcome
	retryAfter    time.Duration
	headers       map[string]string
	providerError string
}

type reportOptionFunc func(*reportConfig)

func (f reportOptionFunc) applyReport(c *reportConfig) { f(c) }

// WithRetryAfter passes the provider's retry-after, with OutcomeRateLimited:
// quotad pauses the pool for that long.
func WithRetryAfter(d time.Duration) ReportOption {
	return reportOptionFunc(func(c *reportConfig) { c.retryAfter = d })
}

// WithProviderError passes the provider's error type or code of a failed or rate
// limited call, such as "insufficient_quota": quotad makes a pool whose quota
// the provider says is spent fail fast instead of queueing.
func WithProviderError(typeOrCode string) ReportOption {
	return reportOptionFunc(func(c *reportConfig) { c.providerError = typeOrCode })
}

// WithHeaders passes the provider's response headers, from which quotad reads
// what the provider says remains of its limits. Only the headers quotad reads are
// sent: x-ratelimit-*, anthropic-ratelimit-*, retry-after, retry-after-ms and
// date (against which Anthropic's reset times are read); names are lowercased
// and, for an http.Header, the first value is kept.
func WithHeaders[H map[string]string | http.Header](h H) ReportOption {
	out := make(map[string]string)
	switch h := any(h).(type) {
	case map[string]string:
		for k, v := range h {
			addRateLimitHeader(out, k, v)
		}
	case http.Header:
		for k, vs := range h {
			if len(vs) > 0 {
				addRateLimitHeader(out, k, vs[0])
			}
		}
	}
	return reportOptionFunc(func(c *reportConfig) {
		if c.headers == nil {
			c.headers = make(map[string]string, len(out))
		}
		maps.Copy(c.headers, out)
	})
}

func addRateLimitHeader(dst map[string]string, name, value string) {
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "x-ratelimit-") || strings.HasPrefix(name, "anthropic-ratelimit-") ||
		name == "retry-after" || name == "retry-after-ms" || name == "date" {
		dst[name] = value
	}
}
