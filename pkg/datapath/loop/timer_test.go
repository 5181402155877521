package loop

import (
	"testing"
	"time"
)

type expiry struct {
	name  string
	fired *[]string
}

func (e *expiry) Expire() { *e.fired = append(*e.fired, e.name) }

// Timers expire in the order of their times, whatever the order they were
// armed, moved or disarmed in; the first one bounds the wait.
func TestTimersInOrder(t *testing.T) {
	var h timerHeap
	var fired []string
	now := time.Now()
	ts := map[string]*Timer{}
	for _, n := range []string{"c", "a", "d", "b", "e"} {
		ts[n] = &Timer{}
		ts[n].SetExpirer(&expiry{n, &fired})
	}
	h.set(ts["c"], now.Add(3*time.Second))
	h.set(ts["a"], now.Add(5*time.Second))
	h.set(ts["d"], now.Add(4*time.Second))
	h.set(ts["b"], now.Add(2*time.Second))
	h.set(ts["e"], now.Add(time.Second))
	h.set(ts["a"], now.Add(500*time.Millisecond)) // moved earlier
	h.set(ts["e"], now.Add(6*time.Second))        // moved later
	h.remove(ts["d"])
	if next, ok := h.next(); !ok || !next.Equal(now.Add(500*time.Millisecond)) {
		t.Fatalf("next = %v, %v; want a's time", next, ok)
	}
	h.expire(now.Add(3 * time.Second))
	if got := len(fired); got != 3 || fired[0] != "a" || fired[1] != "b" || fired[2] != "c" {
		t.Fatalf("expired by +3s: %v; want [a b c]", fired)
	}
	if ts["d"].Armed() || ts["a"].Armed() || !ts["e"].Armed() {
		t.Fatal("Armed() disagrees with the heap")
	}
	h.expire(now.Add(10 * time.Second))
	if len(fired) != 4 || fired[3] != "e" || len(h) != 0 {
		t.Fatalf("after +10s: %v, %d left; want e last and none left", fired, len(h))
	}
}

// disarming is an Expirer that disarms other timers when it fires, as a
// connection's does when it takes a pooled connection out of the pool.
type disarming struct {
	h     *timerHeap
	other []*Timer
	fired *int
}

func (d *disarming) Expire() {
	*d.fired++
	for _, t := range d.other {
		d.h.remove(t)
	}
}

// Regression: expire counted the timers due before running them, and an
// Expire that disarmed others shrank the heap under the count (index out
// of range, seen when a fault's delay ended and took a pooled connection).
func TestExpireThatDisarmsOthers(t *testing.T) {
	var h timerHeap
	fired := 0
	now := time.Now()
	a, b, c := &Timer{}, &Timer{}, &Timer{}
	a.SetExpirer(&disarming{h: &h, other: []*Timer{b, c}, fired: &fired})
	b.SetExpirer(&disarming{h: &h, fired: &fired})
	c.SetExpirer(&disarming{h: &h, fired: &fired})
	h.set(a, now.Add(-3*time.Second))
	h.set(b, now.Add(-2*time.Second))
	h.set(c, now.Add(-time.Second))
	h.expire(now)
	if fired != 1 || len(h) != 0 || b.Armed() || c.Armed() {
		t.Fatalf("fired %d, %d left; want a alone fired, and b and c disarmed by it", fired, len(h))
	}
}
