package providersim

import (
	"math"
	"math/bits"
	"time"
)

// maxDuration stands for "never" in bucket arithmetic.
const maxDuration = time.Duration(math.MaxInt64)

// bucket is a continuously refilling token bucket: it gains limit tokens per
// period, spread evenly, and holds at most capacity. Arithmetic is exact: the
// bucket holds level + frac/period tokens, with frac in [0, period). level may go
// negative (debt) when a settlement charges more than the bucket holds.
//
// A bucket is not safe for concurrent use; the limiter's mutex guards it.
type bucket struct {
	limit    int64 // tokens gained per period, > 0
	capacity int64 // most the bucket holds, > 0
	period   time.Duration
	level    int64
	frac     uint64    // fraction of a token, in units of 1/period
	at       time.Time // when level was last brought up to date
}

// newBucket returns a full bucket.
func newBucket(limit, capacity int64, period time.Duration, now time.Time) *bucket {
	return &bucket{limit: limit, capacity: capacity, period: period, level: capacity, at: now}
}

// advance adds what the bucket gained since it was last brought up to date. A
// clock that moves backwards changes nothing.
func (b *bucket) advance(now time.Time) {
	elapsed := now.Sub(b.at)
	if elapsed <= 0 {
		return
	}
	b.at = now
	if elapsed >= b.until(b.capacity) {
		b.level, b.frac = b.capacity, 0
		return
	}
	// gained = (elapsed*limit + frac) / period, which is below capacity-level+1
	// here, so the 128-bit division cannot overflow.
	hi, lo := bits.Mul64(uint64(elapsed), uint64(b.limit))
	lo, carry := bits.Add64(lo, b.frac, 0)
	hi += carry
	gained, frac := bits.Div64(hi, lo, uint64(b.period))
	b.level += int64(gained)
	b.frac = frac
}

// until returns how long, from the last advance, until the bucket holds at
// least x tokens (0 if it already does), rounded up to the nanosecond.
func (b *bucket) until(x int64) time.Duration {
	if b.level >= x {
		return 0
	}
	// ceil(((x-level)*period - frac) / limit), in 128 bits.
	hi, lo := bits.Mul64(uint64(x-b.level), uint64(b.period))
	lo, borrow := bits.Sub64(lo, b.frac, 0)
	hi -= borrow
	if hi >= uint64(b.limit) {
		return maxDuration
	}
	q, r := bits.Div64(hi, lo, uint64(b.limit))
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return maxDuration
	}
	return time.Duration(q)
}

// add changes the level by n tokens (negative to take), never above capacity.
func (b *bucket) add(n int64) {
	b.level += n
	if b.level >= b.capacity {
		b.level, b.frac = b.capacity, 0
	}
}

// remaining is the whole tokens the bucket holds, 0 when in debt.
func (b *bucket) remaining() int64 { return max(b.level, 0) }

// used is how far the bucket is below capacity, in whole tokens rounded up, so
// that a refused request always has used + requested > capacity.
func (b *bucket) used() int64 { return b.capacity - b.level }
