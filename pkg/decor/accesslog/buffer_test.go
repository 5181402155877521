package accesslog

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// writes records each Write call it gets.
type writes struct {
	mu    sync.Mutex
	calls []string
	fail  int // the next fail calls return an error
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail > 0 {
		w.fail--
		return 0, errors.New("pipe closed")
	}
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

func TestBufferedHoldsThenWritesWholeLines(t *testing.T) {
	out := &writes{}
	// An interval long enough that a test machine's pauses do not flush
	// before the checks below expect it (50 ms could pass in one pause on
	// a loaded machine running the race detector).
	b := NewBuffered(out, 300*time.Millisecond)
	var want strings.Builder
	for i := range 1000 { // about 10 buffers' worth
		line := fmt.Sprintf(`{"n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", 300))
		want.WriteString(line)
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Join(out.all(), "") != want.String() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	calls := out.all()
	if got := strings.Join(calls, ""); got != want.String() {
		t.Fatalf("wrote %d of %d bytes within 5 s", len(got), want.Len())
	}
	if len(calls) > 20 {
		t.Errorf("%d writes for 1,000 lines; want them batched", len(calls))
	}
	for i, c := range calls {
		if !strings.HasSuffix(c, "\n") {
			t.Errorf("write %d ends mid-line: ...%q", i, c[max(0, len(c)-20):])
		}
	}

	// One line is held, then written by the timer.
	b.Write([]byte("late\n"))
	if n := len(out.all()); n != len(calls) {
		t.Errorf("a single line was written at once; want it held")
	}
	for time.Now().Before(deadline) && len(out.all()) == len(calls) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := out.all(); got[len(got)-1] != "late\n" {
		t.Errorf("last write %q; want the held line", got[len(got)-1])
	}
}

func TestBufferedCloseAndErrors(t *testing.T) {
	out := &writes{fail: 1}
	b := NewBuffered(out, time.Hour)
	b.Write([]byte("lost\n"))
	if err := b.Close(); err == nil {
		t.Error("Close: the failed write was not reported")
	}
	// After a failed write, and after Close, lines go through at once.
	b.Write([]byte("after\n"))
	if got := out.all(); len(got) != 1 || got[0] != "after\n" {
		t.Errorf("writes after Close: %q; want [after]", got)
	}
	b2 := NewBuffered(out, time.Hour)
	b2.Write([]byte("held\n"))
	b2.Close()
	if got := out.all(); got[len(got)-1] != "held\n" {
		t.Errorf("Close did not write the held line: %q", got)
	}
}
