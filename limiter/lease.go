package limiter

// A lease is a grant the pool still remembers. Open, it holds a concurrency slot
// and an unsettled estimate until it is reported or expires. Expired or reported,
// it is a tombstone: remembered for a while so that a late Report settles against
// it, and a second Report changes nothing.
type lease struct {
	seq       uint64
	cost      Cost // what the grant charged, then what it settled to
	requestID string
	state     leaseState
	expires   int64 // open: when the lease runs out; tombstone: when it is forgotten
	// grantedAfter is the pool's total grants right after this one: what the pool
	// granted since is the difference from its total when the provider answers.
	grantedAfter Cost
	grantedAt    int64 // when the grant was made: the provider's answer describes about then
	// refundedAtGrant is the pool's net refunds when this was granted: refunds
	// since then are not in the provider's answer either.
	refundedAtGrant Cost
	// delivered: a retry of the request id received the grant, so the first
	// caller leaving does not refund it.
	delivered bool

	prev, next *lease // links in the pool's open or tombstone list, by expires
}

type leaseState uint8

const (
	leaseOpen     leaseState = iota
	leaseExpired             // ran out unreported: its estimate stands as charged
	leaseReported            // settled by a Report
)

// leaseList is a doubly linked list ordered by expires, earliest first.
type leaseList struct {
	head, tail *lease
	n          int
}

// insert places l by its expiry, scanning from the tail, where new and renewed
// leases almost always belong.
func (ll *leaseList) insert(l *lease) {
	after := ll.tail
	for after != nil && after.expires > l.expires {
		after = after.prev
	}
	l.prev = after
	if after == nil {
		l.next = ll.head
		ll.head = l
	} else {
		l.next = after.next
		after.next = l
	}
	if l.next != nil {
		l.next.prev = l
	} else {
		ll.tail = l
	}
	ll.n++
}

func (ll *leaseList) remove(l *lease) {
	if l.prev != nil {
		l.prev.next = l.next
	} else {
		ll.head = l.next
	}
	if l.next != nil {
		l.next.prev = l.prev
	} else {
		ll.tail = l.prev
	}
	l.prev, l.next = nil, nil
	ll.n--
}
