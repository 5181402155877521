package logsink

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// stuck is an output that blocks until released, like a full pipe.
type stuck struct {
	release chan struct{}
	mu      sync.Mutex
	b       bytes.Buffer
}

func (w *stuck) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *stuck) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A writer stuck on its output never holds up the caller; what did not fit
// is counted and said once the output moves again, and Close writes out
// what is held.
func TestNeverBlocksAndCountsDrops(t *testing.T) {
	w := &stuck{release: make(chan struct{})}
	s := New(w)
	line := strings.Repeat("x", 1023) + "\n"
	done := make(chan struct{})
	go func() {
		for range 3 * Limit / len(line) {
			s.Write([]byte(line))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stuck output")
	}
	if s.Dropped() == 0 {
		t.Fatal("3 MiB written into a 1 MiB sink while the output was stuck: nothing dropped")
	}
	close(w.release)
	s.Close()
	got := w.String()
	if !strings.Contains(got, `"dropped_lines":`) {
		t.Error("the dropped lines were never said")
	}
	if n := strings.Count(got, line); n < Limit/len(line)-1 {
		t.Errorf("%d lines written out; want the ~%d held", n, Limit/len(line))
	}
}

// Lines come out whole, in order, soon after they are written.
func TestWritesOutSoon(t *testing.T) {
	var mu sync.Mutex
	var b bytes.Buffer
	s := New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return b.Write(p) }))
	defer s.Close()
	s.Write([]byte("one\n"))
	s.Write([]byte("two\n"))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		got := b.String()
		mu.Unlock()
		if got == "one\ntwo\n" {
			return
		}
	}
	t.Fatalf("output = %q; want both lines, in order", b.String())
}

// A batch's worth held is written out at once, not after Gather; and Close
// does not wait out Gather either.
func TestWritesABatchAtOnce(t *testing.T) {
	var mu sync.Mutex
	var b bytes.Buffer
	s := NewWith(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return b.Write(p) }),
		Options{Gather: time.Hour, Batch: 4096})
	line := strings.Repeat("x", 99) + "\n"
	for range 50 { // 5,000 bytes: over the batch
		s.Write([]byte(line))
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := b.Len()
		mu.Unlock()
		if n > 0 {
			if n%len(line) != 0 {
				t.Errorf("%d bytes written: a line was split", n)
			}
			break
		}
	}
	mu.Lock()
	n := b.Len()
	mu.Unlock()
	if n < 4096 {
		t.Fatalf("%d bytes written out with 5,000 held and a batch of 4,096; want the batch written at once", n)
	}
	s.Write([]byte("last\n"))
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for Gather (an hour)")
	}
	if !strings.HasSuffix(b.String(), "last\n") || strings.Count(b.String(), line) != 50 {
		t.Errorf("after Close: %d bytes, want every line", b.Len())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
