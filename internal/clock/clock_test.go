package clock

import (
	"testing"
	"time"
)

var start = time.Unix(1_700_000_000, 0)

func TestFakeRunsTimersInDeadlineOrder(t *testing.T) {
	f := NewFake(start)
	var got []string
	var at []time.Duration
	add := func(name string, d time.Duration) Timer {
		return f.AfterFunc(d, func() {
			got = append(got, name)
			at = append(at, f.Now().Sub(start))
		})
	}
	add("c", 3*time.Second)
	add("a", time.Second)
	add("b1", 2*time.Second)
	add("b2", 2*time.Second)
	stopped := add("x", 1500*time.Millisecond)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop of a pending timer must report true once")
	}
	if f.Pending() != 4 {
		t.Fatalf("Pending = %d", f.Pending())
	}
	f.Advance(2*time.Second - 1)
	if len(got) != 1 || got[0] != "a" || at[0] != time.Second {
		t.Fatalf("after 2s-1ns: %v at %v", got, at)
	}
	f.Advance(1)
	want := []string{"a", "b1", "b2"}
	if len(got) != 3 || got[1] != want[1] || got[2] != want[2] || at[2] != 2*time.Second {
		t.Fatalf("after 2s: %v at %v", got, at)
	}
	if f.Now() != start.Add(2*time.Second) {
		t.Fatalf("Now = %v", f.Now())
	}
	f.Set(start) // never backwards
	if f.Now() != start.Add(2*time.Second) {
		t.Fatalf("Set moved the clock back to %v", f.Now())
	}
	f.Advance(time.Hour)
	if len(got) != 4 || at[3] != 3*time.Second || f.Pending() != 0 {
		t.Fatalf("after 1h: %v at %v, %d pending", got, at, f.Pending())
	}
}

// A timer may arm another; one due within the same Advance runs in it too.
func TestFakeTimerArmedByATimer(t *testing.T) {
	f := NewFake(start)
	var fired []time.Duration
	f.AfterFunc(time.Second, func() {
		fired = append(fired, f.Now().Sub(start))
		f.AfterFunc(time.Second, func() { fired = append(fired, f.Now().Sub(start)) })
		f.AfterFunc(time.Hour, func() { fired = append(fired, f.Now().Sub(start)) })
	})
	f.Advance(3 * time.Second)
	if len(fired) != 2 || fired[0] != time.Second || fired[1] != 2*time.Second {
		t.Fatalf("fired at %v", fired)
	}
	if f.Pending() != 1 || f.Now() != start.Add(3*time.Second) {
		t.Fatalf("pending %d, now %v", f.Pending(), f.Now())
	}
}

func TestFakeStopAfterFire(t *testing.T) {
	f := NewFake(start)
	n := 0
	tm := f.AfterFunc(0, func() { n++ })
	f.Advance(0)
	if n != 1 || tm.Stop() {
		t.Fatalf("n = %d; Stop after firing must report false", n)
	}
}

func TestReal(t *testing.T) {
	c := Real()
	done := make(chan struct{})
	t0 := c.Now()
	c.AfterFunc(time.Millisecond, func() { close(done) })
	<-done
	if c.Now().Sub(t0) < time.Millisecond {
		t.Fatal("real timer fired early")
	}
	if c.AfterFunc(time.Hour, func() {}).Stop() != true {
		t.Fatal("Stop of a pending real timer")
	}
}
