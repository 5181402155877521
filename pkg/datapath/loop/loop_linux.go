// Package loop is veneer's event loop: one goroutine that owns a set of
// non-blocking sockets, learns when each can be read or written from an
// epoll instance of its own, and runs the timers and the work that other
// goroutines post to it.
//
//	l, err := loop.New()
//	go l.Run()                     // until l.Stop()
//	l.Post(func() { l.Add(fd, h) }) // from any goroutine; h.Ready(fd, ev) runs on the loop
//
// The epoll instance is itself registered with Go's runtime poller: when
// nothing is ready the loop's goroutine parks there like any goroutine
// waiting for a socket, instead of holding a thread in epoll_wait(2) (a
// thread blocked in a syscall is handed off and woken back by the runtime,
// which costs more than the wait saves). Each socket is registered once,
// edge-triggered, for both directions and the peer's half-close; what the
// loop knows of each direction is kept as explicit state in a Socket
// (socket.go), and a connection's bytes move through Flows (flow_linux.go);
// a socket's Layer (TLS, pkg/datapath/looptls) may stand between it and its owner.
//
// Nothing on the loop may block: no DNS, no write to a log pipe, no lock
// held by a request goroutine. Handlers are called with the loop's cached
// time (Now), read once per wake-up.
package loop

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Events are what the poller reported for one socket.
type Events uint32

const (
	In    = Events(unix.EPOLLIN)    // bytes (or the peer's FIN, or an error) to read; a listener has connections
	Out   = Events(unix.EPOLLOUT)   // room in the send buffer; a connect finished
	RDHup = Events(unix.EPOLLRDHUP) // the peer shut its write side
	Hup   = Events(unix.EPOLLHUP)   // both directions are shut
	Err   = Events(unix.EPOLLERR)   // an error is pending (SO_ERROR)
)

// Handler takes the events of the sockets it registered, on the loop.
type Handler interface {
	Ready(fd int, ev Events)
}

// slot is the fd table's entry: who owns the fd now, and which
// registration of that fd number this is.
type slot struct {
	gen int32 // bumped by every Add: an event carrying an older gen is stale
	h   Handler
}

// batch is how many events one epoll_wait returns at most; a full batch is
// followed at once by another look.
const batch = 256

// Loop is one event loop. Its methods, but Post and Stop, are called on the
// loop's goroutine only.
type Loop struct {
	epfd int
	ep   *os.File        // epfd, parked on in Go's poller
	rc   syscall.RawConn // ep's
	wake int             // an eventfd: Post writes it

	fds    []slot // by fd number: no map lookup per event
	events []unix.EpollEvent
	// turnFn is turn as a method value made once, so that waiting
	// allocates nothing; pollErr is what stopped it.
	turnFn  func(uintptr) bool
	pollErr error
	turns   int // looks at epfd so far, for tests of what would spin

	timers   timerHeap
	now      time.Time
	deadline time.Time // set on ep: when the wait must end for the first timer
	expired  bool      // ep's deadline passed: set it anew before waiting again

	mu       sync.Mutex // guards posted, woken and released, between Post and the loop
	posted   []func()
	woken    bool // the eventfd was written since the loop last read it
	released bool // Run has returned: the eventfd is closed
	running  []func()
	stopped  atomic.Bool
	stop     bool

	bufs  [][]byte // idle copy buffers
	pipes []*Pipe  // idle, empty pipes
}

// New makes a loop; Run runs it.
func New() (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll instance: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the runtime poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("setting epoll fd non-blocking: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	l := &Loop{epfd: epfd, ep: ep, rc: rc, wake: wake, events: make([]unix.EpollEvent, batch), now: time.Now()}
	l.turnFn = l.turn
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		ep.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("registering eventfd: %w", err)
	}
	return l, nil
}

// Turns is how many times the loop has looked at its epoll instance.
func (l *Loop) Turns() int { return l.turns }

// Now is the loop's time, read once after every wait.
func (l *Loop) Now() time.Time { return l.now }

// Run runs the loop until Stop, then releases the epoll instance. Sockets
// still registered are the owners' to close before they stop the loop.
func (l *Loop) Run() error {
	defer l.release()
	for !l.stop {
		l.now = time.Now()
		l.timers.expire(l.now)
		if err := l.wait(); err != nil {
			return err
		}
	}
	return nil
}

// wait runs turns of the loop until a timer is due or the loop stops,
// parking in the runtime poller whenever nothing is ready.
func (l *Loop) wait() error {
	next, armed := l.timers.next()
	if armed && !next.After(l.now) {
		// A timer is due already (one that asked for another turn): one
		// turn without waiting, so that sockets are not starved by it.
		l.turn(0)
		return l.pollErr
	}
	if !armed {
		next = time.Time{}
	}
	if l.expired || !next.Equal(l.deadline) {
		if err := l.ep.SetReadDeadline(next); err != nil {
			return fmt.Errorf("setting the loop's deadline: %w", err)
		}
		l.deadline, l.expired = next, false
	}
	// One RawConn.Read for many turns: it calls turnFn, and when that
	// returns false waits for the runtime poller to report epfd readable,
	// then calls it again. Readiness the poller noted while a turn ran is
	// kept between the calls (each new Read clears it first, and so costs
	// another look at epfd).
	err := l.rc.Read(l.turnFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		l.expired = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("waiting on the epoll fd: %w", err)
	}
	return l.pollErr
}

// turn handles what is ready now, without waiting. As RawConn.Read's
// callback it says whether the loop must leave the wait: it stopped or
// failed, or a timer was armed before the deadline the wait has.
func (l *Loop) turn(uintptr) bool {
	for {
		l.turns++
		n, err := epollWait(l.epfd, l.events)
		if err != nil {
			l.pollErr = fmt.Errorf("epoll_wait: %w", err)
			return true
		}
		if n == 0 {
			break
		}
		l.now = time.Now()
		l.dispatch(n)
		if n < len(l.events) || l.stop {
			break // a full batch is followed at once by another look
		}
	}
	next, armed := l.timers.next()
	return l.stop || armed && (l.deadline.IsZero() || next.Before(l.deadline))
}

func (l *Loop) dispatch(n int) {
	for i := range n {
		ev := &l.events[i]
		fd := int(ev.Fd)
		if fd == l.wake {
			l.runPosted()
			continue
		}
		if fd < 0 || fd >= len(l.fds) {
			continue
		}
		s := l.fds[fd]
		// Closed, or a stale event of an fd number that was closed and
		// reused earlier in this batch: never acted on.
		if s.h == nil || s.gen != ev.Pad {
			continue
		}
		s.h.Ready(fd, Events(ev.Events))
	}
}

// Add registers fd, a non-blocking socket, for h: both directions and the
// peer's half-close, edge-triggered, once for the socket's life.
func (l *Loop) Add(fd int, h Handler) error {
	if fd >= len(l.fds) {
		l.fds = append(l.fds, make([]slot, fd+1-len(l.fds)+len(l.fds)/2)...)
	}
	gen := l.fds[fd].gen + 1
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: gen}
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("registering fd %d: %w", fd, err)
	}
	l.fds[fd] = slot{gen: gen, h: h}
	return nil
}

// Remove takes fd out of the loop without closing it (a socket handed to
// another owner): no event of it reaches the loop afterwards.
func (l *Loop) Remove(fd int) error {
	l.fds[fd].h = nil
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("unregistering fd %d: %w", fd, err)
	}
	return nil
}

// Close takes fd out of the loop and closes it.
func (l *Loop) Close(fd int) {
	if fd < len(l.fds) {
		l.fds[fd].h = nil
	}
	closeFD(fd)
}

// Each calls f for every handler registered now (a handler with two sockets
// twice).
func (l *Loop) Each(f func(Handler)) {
	for _, s := range l.fds {
		if s.h != nil {
			f(s.h)
		}
	}
}

// Post runs f on the loop, soon. It may be called from any goroutine, and
// never blocks. It says whether f was taken: work posted after Run
// returned is not.
func (l *Loop) Post(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return false
	}
	l.posted = append(l.posted, f)
	if !l.woken {
		l.woken = true
		one := [8]byte{1}
		unix.Write(l.wake, one[:]) // a full counter still wakes the loop
	}
	return true
}

func (l *Loop) runPosted() {
	l.mu.Lock()
	var b [8]byte
	unix.Read(l.wake, b[:])
	l.woken = false
	l.posted, l.running = l.running[:0], l.posted
	l.mu.Unlock()
	for i, f := range l.running {
		f()
		l.running[i] = nil
	}
}

// Stop ends Run once the work posted before it has run. It may be called
// from any goroutine, more than once.
func (l *Loop) Stop() {
	if !l.stopped.Swap(true) {
		l.Post(func() { l.stop = true })
	}
}

func (l *Loop) release() {
	l.mu.Lock()
	l.released = true
	unix.Close(l.wake)
	l.mu.Unlock()
	l.ep.Close()
	for _, p := range l.pipes {
		p.close()
	}
	l.pipes, l.bufs = nil, nil
}

// Reset takes fd out of the loop and closes it with an RST.
func (l *Loop) Reset(fd int) {
	if fd < len(l.fds) {
		l.fds[fd].h = nil
	}
	Reset(fd)
}
