//go:build !linux

package loop

import "errors"

// errLinux is what New says off Linux: the loop is epoll, eventfd and
// splice(2). The rest of this file only lets the packages that use a loop
// compile (and their portable tests run) on a laptop.
var errLinux = errors.New("veneer's event loop needs Linux (epoll, eventfd, splice)")

// Events are what the poller reported for one socket.
type Events uint32

// The events Linux's loop takes from epoll; none is ever reported here.
const (
	In Events = 1 << iota
	Out
	RDHup
	Hup
	Err
)

// Handler takes the events of the sockets it registered, on the loop.
type Handler interface {
	Ready(fd int, ev Events)
}

// Loop is never made off Linux: New fails.
type Loop struct {
	timers timerHeap
}

// New fails: there is no epoll here.
func New() (*Loop, error) { return nil, errLinux }

// Run fails: there is no loop to run.
func (l *Loop) Run() error { return errLinux }

// Post takes no work: there is no loop to run it.
func (l *Loop) Post(f func()) bool { return false }

// Stop has nothing to stop.
func (l *Loop) Stop() {}

// Each has no handlers to call f for.
func (l *Loop) Each(f func(Handler)) {}
