package clustertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	quotad "github.com/quotad/quotad/clients/go"
)

// Grant is one grant as a client saw it.
type Grant struct {
	At     time.Time // when the answer reached the test process (monotonic clock)
	Seq    uint64    // the pool's sequence number of the grant
	Worker int
}

// Load is workers that each acquire one request of a pool, report it at once,
// and go again, until Stop.
type Load struct {
	Pool  string
	Start time.Time

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	clients []*quotad.Client

	mu         sync.Mutex // guards the fields below
	grants     []Grant
	errs       map[string]int // acquire errors by kind
	reportErrs map[string]int
}

// AcquireTimeout bounds each Acquire (the caller's deadline): longer than the
// forwarding's Settle (3 s), so that a call in a moving pool is answered by the
// cluster rather than cut by the client.
const AcquireTimeout = 5 * time.Second

// StartLoad starts workers goroutines on pool. Worker i has its own Go client,
// dialed with every address in addrs, starting at addrs[i%len(addrs)]: the
// workers spread over the nodes, and each moves on to the next address when
// its node is unavailable.
func StartLoad(t testing.TB, pool string, addrs []string, workers int) *Load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{Pool: pool, Start: time.Now(), cancel: cancel, errs: map[string]int{}, reportErrs: map[string]int{}}
	for i := range workers {
		k := i % len(addrs)
		order := append(slices.Clone(addrs[k:]), addrs[:k]...)
		c, err := quotad.Dial(context.Background(), order)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go l.work(ctx, c, i)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *Load) work(ctx context.Context, c *quotad.Client, worker int) {
	defer l.wg.Done()
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, AcquireTimeout)
		g, err := c.Acquire(actx, l.Pool, quotad.Cost{Requests: 1})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			l.errs[errKind(err)]++
			l.mu.Unlock()
			select { // not a busy loop while no node answers
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		at := time.Now()
		l.mu.Lock()
		l.grants = append(l.grants, Grant{At: at, Seq: g.Sequence, Worker: worker})
		l.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, AcquireTimeout)
		err = g.Report(rctx, quotad.Usage{})
		cancel()
		if err != nil && ctx.Err() == nil {
			l.mu.Lock()
			l.reportErrs[errKind(err)]++
			l.mu.Unlock()
		}
	}
}

// errKind names an error for the counts: its gRPC code, or its context error.
func errKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	case errors.Is(err, quotad.ErrUnavailable):
		return "Unavailable(client gave up)"
	}
	return status.Code(err).String()
}

// Grants returns the grants so far, in the order they arrived.
func (l *Load) Grants() []Grant {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.grants)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Count returns how many grants arrived so far.
func (l *Load) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.grants)
}

// Stop ends the workers and closes their clients; it returns the grants, in the
// order they arrived. Stop may be called again.
func (l *Load) Stop() []Grant {
	l.cancel()
	l.wg.Wait()
	for _, c := range l.clients {
		c.Close()
	}
	return l.Grants()
}

// Errors summarizes the acquire and report errors the workers met.
func (l *Load) Errors() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("acquire errors %s, report errors %s", counts(l.errs), counts(l.reportErrs))
}

// ReportErrors returns how many Reports failed.
func (l *Load) ReportErrors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.reportErrs {
		n += c
	}
	return n
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
