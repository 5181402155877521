// Package logsink writes log lines out on a goroutine of its own, so that
// whoever logs never waits for the output: an event loop that logs a
// connection's end must not stall on a full stdout or stderr pipe (a
// container runtime that reads slowly, a terminal paused).
//
//	out := logsink.New(os.Stderr)
//	log := zerolog.New(out)
//	defer out.Close() // writes out what is held
//
// Lines are held in memory up to a bound and written out together, soon
// after the first one came. Past the bound, lines are dropped and counted,
// and the count is written out as a line of its own once there is room:
// nothing is lost without a trace.
package logsink

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Limit is the most a Sink holds before it drops lines.
const Limit = 1 << 20

// gather is how long the writer waits after a first line for others to
// join it in one write: a wake-up and a write(2) four times a second at
// most, not one per line (each write also wakes the runtime's monitor
// thread, which then polls for a while).
const gather = 250 * time.Millisecond

// Sink is an io.Writer that never blocks on its output.
type Sink struct {
	out  io.Writer
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex // held only to add a line or take what is held
	held    []byte
	spare   []byte
	dropped int
	closed  bool
}

// New starts writing to out what is written to the Sink.
func New(out io.Writer) *Sink {
	s := &Sink{out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.writeOut()
	return s
}

// Write takes one line (zerolog writes each event with one call).
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return s.out.Write(p)
	case len(s.held)+len(p) > Limit:
		s.dropped++
		return len(p), nil
	}
	first := len(s.held) == 0
	s.held = append(s.held, p...)
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped is how many lines have been dropped since the last note of it.
func (s *Sink) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// writeOut is the Sink's goroutine.
func (s *Sink) writeOut() {
	defer close(s.done)
	for range s.wake {
		time.Sleep(gather)
		s.flush()
	}
}

func (s *Sink) flush() {
	s.mu.Lock()
	b := s.held
	s.held = s.spare[:0]
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		b = fmt.Appendf(b, `{"level":"warn","dropped_lines":%d,"message":"log output too slow: lines dropped"}`+"\n", dropped)
	}
	if len(b) > 0 {
		s.out.Write(b) // an error has nowhere better to go
	}
	s.mu.Lock()
	s.spare = b[:0]
	s.mu.Unlock()
}

// Close writes out what is held; later lines are written at once.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.wake)
	s.mu.Unlock()
	<-s.done
	s.flush()
	return nil
}
