package clustertest

import (
	"fmt"
	"time"
)

// Replay is the outcome of replaying grants through a reference token bucket.
type Replay struct {
	Grants int
	// Lowest is the lowest level the bucket reached after a grant; below zero the
	// grants overdrew the reference.
	Lowest float64
	// At is when (since the replay's start) the bucket was lowest, and Since is
	// when it was last full before that (or the start): the interval [Since, At]
	// held the Excess grants beyond what the bucket could pay.
	At, Since time.Duration
	Excess    float64
}

// OK reports whether the bucket never went below zero.
func (r Replay) OK() bool { return r.Lowest >= -1e-9 }

func (r Replay) String() string {
	return fmt.Sprintf("%d grants, lowest level %.2f at %v (full, or starting, at %v)", r.Grants, r.Lowest,
		r.At.Round(time.Millisecond), r.Since.Round(time.Millisecond))
}

// ReplayBucket replays grants (one request each, in arrival order) through a
// token bucket of rate per second and the given capacity, holding initial at
// start; a grant takes one request even when the bucket does not hold it (the
// level then goes below zero). Grants before start count as made at start.
func ReplayBucket(grants []Grant, start time.Time, rate, capacity, initial float64) Replay {
	r := Replay{Grants: len(grants), Lowest: max(capacity, initial)}
	level, last, full := initial, time.Duration(0), time.Duration(0)
	for _, g := range grants {
		at := max(g.At.Sub(start), last) // arrival order, but be safe
		level += rate * (at - last).Seconds()
		if level >= capacity {
			level, full = capacity, at
		}
		last = at
		level--
		if level < r.Lowest {
			r.Lowest, r.At, r.Since = level, at, full
		}
	}
	if r.Lowest < 0 {
		r.Excess = -r.Lowest
	}
	return r
}

// CountBetween returns how many grants arrived in [from, to).
func CountBetween(grants []Grant, from, to time.Time) int {
	n := 0
	for _, g := range grants {
		if !g.At.Before(from) && g.At.Before(to) {
			n++
		}
	}
	return n
}

// FirstAfter returns the first grant that arrived after t.
func FirstAfter(grants []Grant, t time.Time) (Grant, bool) {
	for _, g := range grants {
		if g.At.After(t) {
			return g, true
		}
	}
	return Grant{}, false
}

// LastBefore returns the last grant that arrived at or before t.
func LastBefore(grants []Grant, t time.Time) (Grant, bool) {
	for i := len(grants) - 1; i >= 0; i-- {
		if !grants[i].At.After(t) {
			return grants[i], true
		}
	}
	return Grant{}, false
}

// MaxGap returns the longest time without a grant that overlaps [from, to]:
// between two consecutive grants, or from the last grant to to when none came
// after it. begin is when the gap began.
func MaxGap(grants []Grant, from, to time.Time) (gap time.Duration, begin time.Time) {
	prev, ok := LastBefore(grants, from)
	cur := from
	if ok {
		cur = prev.At
	}
	for _, g := range grants {
		if !g.At.After(cur) {
			continue
		}
		if g.At.Sub(cur) > gap {
			gap, begin = g.At.Sub(cur), cur
		}
		cur = g.At
		if cur.After(to) {
			return gap, begin
		}
	}
	if to.Sub(cur) > gap {
		gap, begin = to.Sub(cur), cur
	}
	return gap, begin
}
