package loop

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recorder is a Handler that notes the events it got.
type recorder struct{ got []Events }

func (r *recorder) Ready(_ int, ev Events) { r.got = append(r.got, ev) }

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

func newLoop(t *testing.T) *Loop {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.release() })
	return l
}

// An event of an fd number that was closed and reused in the same batch
// (an accept after a close) carries the old registration's generation: it
// must never reach the new owner. Regression guard for the fd table.
func TestStaleEventOfReusedFD(t *testing.T) {
	l := newLoop(t)
	a, peer := socketpair(t)
	defer unix.Close(peer)
	old := &recorder{}
	if err := l.Add(a, old); err != nil {
		t.Fatal(err)
	}
	stale := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(a), Pad: l.fds[a].gen}
	l.Close(a)
	b, peer2 := socketpair(t) // the lowest free numbers: a's again
	defer unix.Close(b)
	defer unix.Close(peer2)
	if b != a {
		t.Skipf("the kernel gave fd %d, not the %d just closed: nothing to reuse", b, a)
	}
	fresh := &recorder{}
	if err := l.Add(b, fresh); err != nil {
		t.Fatal(err)
	}
	l.events[0] = stale
	l.dispatch(1)
	if len(old.got)+len(fresh.got) != 0 {
		t.Fatalf("a stale event was acted on: old got %v, new got %v", old.got, fresh.got)
	}
	l.events[0] = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(b), Pad: l.fds[b].gen}
	l.dispatch(1)
	if len(fresh.got) != 1 {
		t.Fatalf("the new owner's own event: got %v; want one", fresh.got)
	}
}

// A removed fd (handed to another owner) gets no more events from the
// kernel, not only from the table.
func TestRemoveUnregisters(t *testing.T) {
	l := newLoop(t)
	a, peer := socketpair(t)
	defer unix.Close(a)
	defer unix.Close(peer)
	r := &recorder{}
	if err := l.Add(a, r); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(a); err != nil {
		t.Fatal(err)
	}
	unix.Write(peer, []byte("x"))
	n, err := epollWait(l.epfd, l.events)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range l.events[:n] {
		if int(ev.Fd) == a {
			t.Fatalf("epoll still reports fd %d after Remove: %#x", a, ev.Events)
		}
	}
}

// Work posted from other goroutines runs on the loop, in order, and Stop
// ends Run after what was posted before it.
func TestPostAndStop(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- l.Run() }()
	var got []int
	for i := range 100 {
		l.Post(func() { got = append(got, i) })
	}
	l.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("posted work ran out of order: %v", got)
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d of 100 posted functions ran", len(got))
	}
	// Dropped, and said so, not written to a closed (maybe reused) eventfd.
	if l.Post(func() { t.Error("work posted after Run returned ran") }) {
		t.Error("Post after Run returned said the work was taken")
	}
}
