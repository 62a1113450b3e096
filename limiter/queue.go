package limiter

// The queue holds waiters per tenant, FIFO within a tenant, and shares the pool
// between tenants by deficit round robin on cost: each visit of a tenant adds its
// weight times a quantum to its deficit, and its head waiter is next once its cost
// fits the deficit. A cost is measured as its dominant share: the largest fraction
// of any one limit's capacity it takes. The next waiter, once chosen, stays chosen
// until it is granted or leaves, so a large cost is never overtaken forever.

// quantum is the share of a pool a tenant of weight 1 earns per visit: small enough
// that tenants interleave finely, with whole rounds skipped arithmetically when
// every head needs many.
const quantum = 1.0 / 64

// Waiter is a call waiting in a pool's queue. Its fields are owned by the pool (and
// so by whoever serializes access to it).
type Waiter struct {
	seq       uint64
	tenant    *tenantQueue
	cost      Cost
	share     float64
	requestID string
	enqueued  int64
	attached  int  // callers waiting on it (retries with its request id attach)
	delivered bool // a caller has received its grant

	prev, next *Waiter // FIFO links within the tenant

	state waiterState
	grant Grant
	err   error
	done  chan struct{} // closed when state leaves waiting; made by the Limiter
}

type waiterState uint8

const (
	waiting waiterState = iota
	waiterGranted
	waiterFailed
)

// tenantQueue is one tenant's FIFO, and its place in the round robin ring while
// it has waiters.
type tenantQueue struct {
	name       string
	weight     float64
	head, tail *Waiter
	n          int
	queued     Cost
	deficit    float64
	prev, next *tenantQueue // round robin ring links
}

// queue is a pool's set of waiting tenants.
type queue struct {
	tenants map[string]*tenantQueue // tenants with waiters
	cur     *tenantQueue            // the tenant the round robin is visiting
	chosen  *Waiter                 // the next waiter to grant, once picked
	n       int                     // waiters in all
}

func (q *queue) empty() bool { return q.n == 0 }

// push appends w to its tenant's FIFO, bringing the tenant into the ring.
func (q *queue) push(w *Waiter, tenant string, weight float64) {
	t := q.tenants[tenant]
	if t == nil {
		if q.tenants == nil {
			q.tenants = make(map[string]*tenantQueue)
		}
		t = &tenantQueue{name: tenant, weight: weight}
		q.tenants[tenant] = t
		q.joinRing(t)
	}
	w.tenant = t
	w.prev, w.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = w
	} else {
		t.head = w
	}
	t.tail = w
	t.n++
	t.queued = t.queued.add(w.cost)
	q.n++
}

// remove takes w out of the queue (granted or gone).
func (q *queue) remove(w *Waiter) {
	t := w.tenant
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		t.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		t.tail = w.prev
	}
	w.prev, w.next = nil, nil
	t.n--
	t.queued = t.queued.sub(w.cost)
	q.n--
	if q.chosen == w {
		q.chosen = nil
	}
	if t.n == 0 {
		q.leaveRing(t)
		delete(q.tenants, t.name)
	}
}

// joinRing puts t at the end of the current round.
func (q *queue) joinRing(t *tenantQueue) {
	if q.cur == nil {
		t.prev, t.next = t, t
		q.cur = t
		t.deficit = quantum * t.weight
		return
	}
	t.prev, t.next = q.cur.prev, q.cur
	q.cur.prev.next = t
	q.cur.prev = t
}

// leaveRing takes an empty tenant out of the ring; its deficit is forfeited, so an
// idle tenant banks no credit.
func (q *queue) leaveRing(t *tenantQueue) {
	if t.next == t {
		q.cur = nil
	} else {
		t.prev.next = t.next
		t.next.prev = t.prev
		if q.cur == t {
			q.visit(t.next)
		}
	}
	t.prev, t.next = nil, nil
	t.deficit = 0
}

func (q *queue) visit(t *tenantQueue) {
	q.cur = t
	t.deficit += quantum * t.weight
}

// next returns the waiter to grant next, choosing it if none is chosen yet, or nil
// when the queue is empty.
func (q *queue) next() *Waiter {
	if q.chosen != nil || q.cur == nil {
		return q.chosen
	}
	visits := 0
	for {
		t := q.cur
		if t.head.share <= t.deficit {
			q.chosen = t.head
			return q.chosen
		}
		q.visit(t.next)
		visits++
		if visits == len(q.tenants) {
			q.skipRounds()
			visits = 0
		}
	}
}

// skipRounds credits every tenant with the whole rounds that would pass before the
// first of them can pay its head, less one, so that the next round picks it.
func (q *queue) skipRounds() {
	rounds := -1.0
	for _, t := range q.tenants {
		r := ceilPositive((t.head.share - t.deficit) / (quantum * t.weight))
		if rounds < 0 || r < rounds {
			rounds = r
		}
	}
	if rounds <= 1 {
		return
	}
	for _, t := range q.tenants {
		t.deficit += (rounds - 1) * quantum * t.weight
	}
}

// charge charges w's share to its tenant once w leaves the queue granted.
func (q *queue) charge(w *Waiter) {
	w.tenant.deficit -= w.share
}

func ceilPositive(x float64) float64 {
	if x <= 0 {
		return 0
	}
	n := float64(int64(x))
	if n < x {
		n++
	}
	return n
}

// ahead estimates, for a new waiter of the given tenant and cost, the cost the
// queue will grant before it is granted itself, its own cost included: all of its
// own tenant's queue, the chosen waiter (granted next, whatever its tenant), and
// of every other tenant what that tenant's weight lets it take meanwhile (fluid
// fair sharing).
func (q *queue) ahead(tenant string, weight float64, c Cost) Cost {
	own := c
	if t := q.tenants[tenant]; t != nil {
		own = own.add(t.queued)
	}
	total := own
	for name, t := range q.tenants {
		if name == tenant {
			continue
		}
		queued := t.queued
		if q.chosen != nil && q.chosen.tenant == t {
			total = total.add(q.chosen.cost)
			queued = queued.sub(q.chosen.cost)
		}
		ratio := t.weight / weight
		total = total.add(Cost{
			Requests:     min(queued.Requests, scale(own.Requests, ratio)),
			InputTokens:  min(queued.InputTokens, scale(own.InputTokens, ratio)),
			OutputTokens: min(queued.OutputTokens, scale(own.OutputTokens, ratio)),
		})
	}
	return total
}

func scale(v int64, ratio float64) int64 {
	f := float64(v) * ratio
	if f >= float64(never) {
		return never
	}
	return int64(f)
}
