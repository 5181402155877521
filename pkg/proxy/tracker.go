package proxy

import "sync"

// tracker counts connections being handled, like sync.WaitGroup, except
// that a connection accepted just as a drain begins may still be added
// while the drain waits (which a WaitGroup forbids: Add from zero must not
// race with Wait).
type tracker struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
}

func (t *tracker) Add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tracker) Done() {
	t.mu.Lock()
	if t.n--; t.n == 0 && t.cond != nil {
		t.cond.Broadcast()
	}
	t.mu.Unlock()
}

// Wait returns once nothing is counted.
func (t *tracker) Wait() {
	t.mu.Lock()
	if t.cond == nil {
		t.cond = sync.NewCond(&t.mu)
	}
	for t.n > 0 {
		t.cond.Wait()
	}
	t.mu.Unlock()
}
