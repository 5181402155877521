package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// idle is a passthrough connection's idle timeout (Envoy's tcp_proxy
// idle_timeout): once no bytes have moved either way for the whole timeout,
// it calls onIdle, which closes both sides. Both copy directions touch it as
// bytes move, which costs a clock read; one timer per connection, reset only
// when it fires early. A nil *idle is no timeout.
type idle struct {
	start   time.Time
	timeout time.Duration
	last    atomic.Int64 // when bytes last moved, as time since start
	onIdle  func()

	mu      sync.Mutex // the timer's callback against stop
	timer   *time.Timer
	stopped bool
	fired   bool
}

func newIdle(timeout time.Duration, onIdle func()) *idle {
	if timeout <= 0 {
		return nil
	}
	it := &idle{start: time.Now(), timeout: timeout, onIdle: onIdle}
	it.mu.Lock()
	it.timer = time.AfterFunc(timeout, it.check)
	it.mu.Unlock()
	return it
}

// touch notes that bytes moved.
func (it *idle) touch() {
	if it != nil {
		it.last.Store(int64(time.Since(it.start)))
	}
}

// check runs when the timer fires: quiet for the whole timeout ends the
// connection, otherwise the timer is set again for the rest of it, counted
// from when bytes last moved.
func (it *idle) check() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.stopped {
		return
	}
	quiet := time.Since(it.start) - time.Duration(it.last.Load())
	if quiet < it.timeout {
		it.timer.Reset(it.timeout - quiet)
		return
	}
	it.fired = true
	it.onIdle()
}

// stop ends the watch (the timer is never set again) and reports whether
// the timeout ended the connection.
func (it *idle) stop() bool {
	if it == nil {
		return false
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	it.stopped = true
	it.timer.Stop()
	return it.fired
}
