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
// after the first one came or at once when a batch is held (Options).
// Past the bound, lines are dropped and counted,
// and the count is written out as a line of its own once there is room:
// nothing is lost without a trace.
package logsink

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Options bound a Sink. The zero value of each field is its default.
type Options struct {
	// Gather is how long the writer waits after a first line for others
	// to join it in one write; 0 means 250ms: a wake-up and a write(2)
	// four times a second at most, not one per line (each write also
	// wakes the runtime's monitor thread, which then polls for a while).
	Gather time.Duration
	// Batch is how much held starts the write at once, before Gather is
	// up; 0 means 64 KiB. A busy access log is written in batches of it,
	// never held to the Limit.
	Batch int
	// Limit is the most held, the batch being written not counted, before
	// lines are dropped; 0 means 1 MiB.
	Limit int
}

// Limit is the default Options.Limit.
const Limit = 1 << 20

// Sink is an io.Writer that never blocks on its output.
type Sink struct {
	out  io.Writer
	o    Options
	wake chan struct{} // a first line came
	full chan struct{} // a batch is held
	done chan struct{}

	mu       sync.Mutex // held only to add a line or take what is held
	held     []byte
	spare    []byte
	dropped  int
	fullSent bool // full was signalled for what is held
	closed   bool
}

// New starts writing to out what is written to the Sink, with the default
// Options.
func New(out io.Writer) *Sink { return NewWith(out, Options{}) }

// NewWith is New with o.
func NewWith(out io.Writer, o Options) *Sink {
	if o.Gather <= 0 {
		o.Gather = 250 * time.Millisecond
	}
	if o.Batch <= 0 {
		o.Batch = 64 << 10
	}
	if o.Limit <= 0 {
		o.Limit = Limit
	}
	s := &Sink{out: out, o: o, wake: make(chan struct{}, 1), full: make(chan struct{}, 1), done: make(chan struct{})}
	go s.writeOut()
	return s
}

// Write takes one line (zerolog writes each event with one call, and the
// access log each line).
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return s.out.Write(p)
	case len(s.held)+len(p) > s.o.Limit:
		s.dropped++
		return len(p), nil
	}
	first := len(s.held) == 0
	s.held = append(s.held, p...)
	if first {
		signal(s.wake)
	}
	if len(s.held) >= s.o.Batch && !s.fullSent {
		s.fullSent = true
		signal(s.full)
	}
	return len(p), nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
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
	t := time.NewTimer(s.o.Gather)
	t.Stop()
	for range s.wake {
		t.Reset(s.o.Gather)
		select {
		case <-t.C:
		case <-s.full:
			t.Stop()
		}
		s.flush()
	}
}

func (s *Sink) flush() {
	s.mu.Lock()
	b := s.held
	s.held = s.spare[:0]
	dropped := s.dropped
	s.dropped = 0
	s.fullSent = false
	select {
	case <-s.full: // signalled for what is taken now
	default:
	}
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
	signal(s.full) // a write waiting out Gather goes now
	s.mu.Unlock()
	<-s.done
	s.flush()
	return nil
}
