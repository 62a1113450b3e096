package limiter

import (
	"math"
	"math/bits"
)

// Buckets are kept in nanoseconds of refill rather than in units: a bucket is the
// instant at which it will be full again ("full"), and an amount of units is the
// time the bucket takes to refill it. All arithmetic is then integer and exact at
// the nanosecond, and a day's tokens never overflow: units x period is computed in
// 128 bits before it is divided.
//
// Rounding is always in the limit's favour: a debit rounds up, a refund rounds
// down, so the engine's bucket never holds more than the exact one would.

// never is a time so far ahead that nothing is granted before it, yet adding a
// capacity to it cannot overflow.
const never = math.MaxInt64 / 4

// bucketRate converts between units and nanoseconds of refill for one limit.
type bucketRate struct {
	amount   int64 // units per period
	period   int64 // nanoseconds
	capacity int64 // units
	capNs    int64 // nanoseconds that refill the capacity: nsFor(capacity)
	perUnit  int64 // period/amount when it divides exactly (most real limits), else 0
}

// newBucketRate returns the rate of l, and false if its capacity does not fit the
// engine's arithmetic.
func newBucketRate(l Limit) (bucketRate, bool) {
	r := bucketRate{amount: l.Amount, period: int64(l.Period), capacity: l.capacity()}
	if r.amount <= 0 || r.period <= 0 || r.capacity <= 0 {
		return r, false
	}
	if r.period%r.amount == 0 {
		r.perUnit = r.period / r.amount
	}
	r.capNs = r.nsFor(r.capacity)
	return r, r.capNs < never
}

// nsFor returns the refill time of units, rounded up, saturating at never.
func (r bucketRate) nsFor(units int64) int64 {
	if units <= 0 {
		return 0
	}
	if r.perUnit > 0 && units < never/r.perUnit {
		return units * r.perUnit // exact, and no division on the hot path
	}
	return mulDiv(units, r.period, r.amount, true)
}

// nsRefund returns the refill time of units, rounded down, saturating at never.
func (r bucketRate) nsRefund(units int64) int64 {
	if units <= 0 {
		return 0
	}
	if r.perUnit > 0 && units < never/r.perUnit {
		return units * r.perUnit
	}
	return mulDiv(units, r.period, r.amount, false)
}

// mulDiv returns a*b/c for positive operands, rounded up or down, saturating at never.
func mulDiv(a, b, c int64, roundUp bool) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return never
	}
	q, rem := bits.Div64(hi, lo, uint64(c))
	if roundUp && rem != 0 {
		q++
	}
	if q >= never {
		return never
	}
	return int64(q)
}

// bucket is one limit's state: full is the instant (engine nanoseconds) from which
// the bucket holds its whole capacity again. At time now it holds
// capacity - (full-now) worth of refill, which is negative when full-now exceeds
// capNs: the bucket is in debt.
type bucket struct {
	rate bucketRate // in force: the configured one, or the provider's while lower
	full int64

	configured    bucketRate // from the pool's config
	providerUntil int64      // while non-zero, rate is the provider's until then
}

// setRate changes the bucket's rate at now, keeping its fill fraction.
func (b *bucket) setRate(now int64, r bucketRate) {
	b.full = now + scaleDeficit(b.deficit(now), b.rate.capNs, r.capNs)
	b.rate = r
}

// deficit returns how many nanoseconds of refill the bucket lacks at now.
func (b *bucket) deficit(now int64) int64 {
	if b.full <= now {
		return 0
	}
	return b.full - now
}

// readyAt returns the earliest instant >= now at which ns of refill can be debited
// without going below zero.
func (b *bucket) readyAt(now, ns int64) int64 {
	t := b.full + ns - b.rate.capNs
	if ns > b.rate.capNs {
		return never
	}
	return max(t, now)
}

// debit takes ns of refill at now; the bucket may go into debt.
func (b *bucket) debit(now, ns int64) {
	b.full = min(max(b.full, now)+ns, never)
}

// refund gives back ns of refill at now, never filling past the capacity.
func (b *bucket) refund(now, ns int64) {
	b.full = max(b.full-ns, now)
}

// level returns what the bucket holds at now, in units (negative in debt). It is
// for display: the exact level may be up to one unit more than a positive result.
func (b *bucket) level(now int64) int64 {
	missing := b.deficit(now)
	if missing <= b.rate.capNs {
		return b.rate.capacity - b.rate.unitsInUp(missing)
	}
	return -b.rate.unitsInUp(missing - b.rate.capNs)
}

// unitsInUp returns how many units ns of refill is worth, rounded up.
func (r bucketRate) unitsInUp(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	return mulDiv(ns, r.amount, r.period, true)
}
