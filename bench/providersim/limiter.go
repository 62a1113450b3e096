package providersim

import (
	"sync"
	"time"
)

// api is the shape of a provider: it decides which buckets a pool has.
type api int

const (
	apiOpenAI    api = iota // requests and tokens (input plus output)
	apiAnthropic            // requests, input tokens and output tokens
)

func (a api) String() string {
	if a == apiAnthropic {
		return "anthropic"
	}
	return "openai"
}

// resource is one bucket of a pool.
type resource int

const (
	resRequests resource = iota
	resTokens            // OpenAI: input plus output tokens
	resInput             // Anthropic input tokens
	resOutput            // Anthropic output tokens
	numResources
)

// usage is the tokens of one request: an estimate at admission, the actual
// amounts at settlement.
type usage struct {
	input, output int64
}

// amounts is what usage takes from each resource; a request is always 1 request.
func (u usage) amounts() [numResources]int64 {
	return [numResources]int64{1, u.input + u.output, u.input, u.output}
}

// poolID names one pool: a provider shape, an API key and a model.
type poolID struct {
	api   api
	key   string
	model string
}

func (id poolID) String() string { return id.api.String() + "/" + id.key + "/" + id.model }

// pool is the buckets of one poolID; a nil bucket is not enforced.
type pool struct {
	buckets [numResources]*bucket
}

// bucketState is a bucket as the rate-limit headers report it.
type bucketState struct {
	present   bool
	limit     int64
	remaining int64
	reset     time.Duration // until the bucket is full again
}

// decision is the outcome of one admission.
type decision struct {
	at       time.Time // when it was decided
	admitted bool
	// tooLarge: the request needs more than a bucket can ever hold.
	tooLarge bool
	// binding is the first refusing resource (requests, tokens, input, output).
	binding resource
	// used, requested and limit describe the binding bucket on a refusal.
	used, requested, limit int64
	// retryAfter is when every refusing bucket will hold enough.
	retryAfter time.Duration
	// state is every bucket right after the decision.
	state [numResources]bucketState
}

// ticket is an admitted request, to be settled once.
type ticket struct {
	pool      *pool
	estimate  usage
	recordGen uint64 // recorder generation at admission
}

// limiter holds the pools. Safe for concurrent use.
type limiter struct {
	cfg *Config // read-only

	mu    sync.Mutex // guards pools and every bucket in them
	pools map[poolID]*pool
}

func newLimiter(cfg *Config) *limiter {
	return &limiter{cfg: cfg, pools: make(map[poolID]*pool)}
}

// poolLocked returns the pool of id, creating it with full buckets. l.mu is held.
func (l *limiter) poolLocked(id poolID, now time.Time) *pool {
	if p, ok := l.pools[id]; ok {
		return p
	}
	lim := l.cfg.limitsFor(id.key, id.model)
	rates := [numResources]Rate{resRequests: lim.Requests}
	if id.api == apiOpenAI {
		rates[resTokens] = lim.Tokens
	} else {
		rates[resInput], rates[resOutput] = lim.InputTokens, lim.OutputTokens
	}
	p := &pool{}
	for r, rate := range rates {
		if rate.Limit > 0 {
			p.buckets[r] = newBucket(rate.Limit, orDefault(rate.Burst, rate.Limit), lim.Period, now)
		}
	}
	l.pools[id] = p
	return p
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// admit debits the estimate from every bucket of the pool if all of them hold
// enough, and otherwise changes nothing. The clock is read under the lock, so
// decisions are made in the order of their times. The ticket is valid only when
// admitted.
func (l *limiter) admit(id poolID, estimate usage) (ticket, decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Clock.Now()
	p := l.poolLocked(id, now)
	need := estimate.amounts()
	d := decision{at: now}
	for _, b := range p.buckets {
		if b != nil {
			b.advance(now)
		}
	}
	for r, b := range p.buckets {
		if b != nil && need[r] > b.capacity {
			d.tooLarge, d.binding = true, resource(r)
			break
		}
	}
	refused := d.tooLarge
	if !d.tooLarge {
		for r, b := range p.buckets {
			if b != nil && b.level < need[r] {
				if !refused {
					refused, d.binding = true, resource(r)
				}
				d.retryAfter = max(d.retryAfter, b.until(need[r]))
			}
		}
	}
	if !refused {
		d.admitted = true
		for r, b := range p.buckets {
			if b != nil {
				b.add(-need[r])
			}
		}
	}
	if !d.admitted {
		b := p.buckets[d.binding]
		d.used, d.requested, d.limit = b.used(), need[d.binding], b.capacity
	}
	d.state = p.stateLocked()
	return ticket{pool: p, estimate: estimate}, d
}

// settle replaces a ticket's estimate by the actual usage: each bucket is
// refunded or charged the difference (a charge may put it into debt). It
// returns when it happened.
func (l *limiter) settle(t ticket, actual usage) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Clock.Now()
	est, act := t.estimate.amounts(), actual.amounts()
	for r, b := range t.pool.buckets {
		if b != nil {
			b.advance(now)
			b.add(est[r] - act[r])
		}
	}
	return now
}

// reset forgets every pool: they start full again. Tickets of forgotten pools
// settle into nothing.
func (l *limiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pools = make(map[poolID]*pool)
}

// stateLocked reports every bucket of p; the limiter's mutex is held.
func (p *pool) stateLocked() [numResources]bucketState {
	var s [numResources]bucketState
	for r, b := range p.buckets {
		if b != nil {
			s[r] = bucketState{present: true, limit: b.limit, remaining: b.remaining(), reset: b.until(b.capacity)}
		}
	}
	return s
}
