package loop

import "time"

// A Timer calls its Expirer on the loop once its time has come. It is
// embedded in what it times (a connection keeps one, for whichever
// deadline its stage has), so that arming it allocates nothing.
type Timer struct {
	at time.Time
	i  int // its place in the heap, plus one; 0: not armed
	h  Expirer
}

// Expirer is told that its timer's time has come.
type Expirer interface {
	Expire()
}

// SetExpirer names who is told when t expires; once, before arming it.
func (t *Timer) SetExpirer(h Expirer) { t.h = h }

// Armed says whether t will expire.
func (t *Timer) Armed() bool { return t.i != 0 }

// At is when t expires, when armed.
func (t *Timer) At() time.Time { return t.at }

// Arm sets t to expire at at, armed or not. A time already past expires
// on the loop's next turn, after the sockets ready then.
func (l *Loop) Arm(t *Timer, at time.Time) { l.timers.set(t, at) }

// Disarm stops t; it may not be armed.
func (l *Loop) Disarm(t *Timer) { l.timers.remove(t) }

// timerHeap is a binary min-heap of timers by time: the first one bounds
// the loop's wait.
type timerHeap []*Timer

func (h timerHeap) next() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].at, true
}

func (h *timerHeap) set(t *Timer, at time.Time) {
	if t.i == 0 {
		t.at = at
		*h = append(*h, t)
		t.i = len(*h)
		h.up(t.i - 1)
		return
	}
	earlier := at.Before(t.at)
	t.at = at
	if earlier {
		h.up(t.i - 1)
	} else {
		h.down(t.i - 1)
	}
}

func (h *timerHeap) remove(t *Timer) {
	if t.i == 0 {
		return
	}
	i, last := t.i-1, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	t.i = 0
	if i != last {
		h.down(i)
		h.up(i)
	}
}

// expire pops and runs every timer due at now. A timer armed again by its
// own Expire for a time not after now waits for the next turn. An Expire
// may disarm other timers too: the heap can shrink under the count.
func (h *timerHeap) expire(now time.Time) {
	for n := len(*h); n > 0 && len(*h) > 0 && !(*h)[0].at.After(now); n-- {
		t := (*h)[0]
		h.remove(t)
		t.h.Expire()
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i+1, j+1
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].at.Before(h[p].at) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].at.Before(h[c].at) {
			c = r
		}
		if !h[c].at.Before(h[i].at) {
			return
		}
		h.swap(i, c)
		i = c
	}
}
