package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// maxAccept bounds the connections one turn of the loop accepts from one
// listener (HAProxy's tune.maxaccept): a burst of thousands must not keep
// the loop from the connections it already has.
const maxAccept = 64

// listener is a listening socket owned by a loop.
type listener struct {
	s    *Server
	l    *loop.Loop
	fd   int
	port uint16
	// paused: accepting waits for the timer, after a turn's maxAccept or
	// while out of file descriptors, backing off.
	paused  bool
	closed  bool
	backoff time.Duration
	timer   loop.Timer
}

// newListener takes l's socket over for lp: the loop accepts on a
// duplicate of it, and l is closed (out of Go's poller).
func newListener(s *Server, lp *loop.Loop, l *net.TCPListener) (*listener, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var serr error
	if err := rc.Control(func(sfd uintptr) {
		if fd, serr = unix.FcntlInt(sfd, unix.F_DUPFD_CLOEXEC, 0); serr == nil {
			serr = setOptions(fd)
		}
	}); err != nil {
		return nil, err
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	if serr != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("taking the listener over: %w", serr)
	}
	ln := &listener{s: s, l: lp, fd: fd, port: port}
	ln.timer.SetExpirer(ln)
	added := make(chan error, 1)
	if !lp.Post(func() { added <- lp.Add(fd, ln) }) {
		added <- errors.New("the event loop has stopped")
	}
	if err := <-added; err != nil {
		unix.Close(fd)
		return nil, err
	}
	return ln, nil
}

// setOptions sets on a socket what every connection of the agent has: no
// Nagle delay, and TCP keepalive as Go's net package sets it (15s idle, 15s
// between probes), so that a dead peer is found. Accepted sockets inherit
// them from the listener.
func setOptions(fd int) error {
	for _, o := range [...]struct{ level, opt, v int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
	} {
		if err := loop.SetInt(fd, o.level, o.opt, o.v); err != nil {
			return fmt.Errorf("setsockopt %d/%d: %w", o.level, o.opt, err)
		}
	}
	return nil
}

func (ln *listener) Ready(int, loop.Events) {
	if !ln.paused {
		ln.accept()
	}
}

func (ln *listener) Expire() {
	ln.paused = false
	ln.accept()
}

// accept takes the connections queued, up to maxAccept of them.
func (ln *listener) accept() {
	for range maxAccept {
		if ln.closed {
			return
		}
		fd, peer, ipv6, err := accept(ln.fd)
		switch err {
		case nil:
			ln.backoff = 0
			ln.s.accepted(ln, fd, peer, ipv6)
			continue
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// The connection stays queued and the listener readable:
			// trying again at once would spin. Wait, doubling the wait up
			// to a second, as Go's net/http does.
			ln.backoff = min(max(2*ln.backoff, 5*time.Millisecond), time.Second)
			ln.s.log.Warn().Err(err).Dur("retry_in", ln.backoff).Msg("accept failed")
			ln.pause(ln.backoff)
			return
		default:
			ln.s.log.Error().Err(err).Msg("accept failed")
			ln.pause(time.Second)
			return
		}
	}
	ln.pause(0) // more may be queued: on the next turn, after the others
}

func (ln *listener) pause(d time.Duration) {
	ln.paused = true
	ln.l.Arm(&ln.timer, ln.l.Now().Add(d))
}

// close stops accepting: connections still queued are reset by the kernel,
// or, with net.ipv4.tcp_migrate_req, move to another agent's listener.
func (ln *listener) close() {
	if ln.closed {
		return
	}
	ln.closed = true
	ln.l.Disarm(&ln.timer)
	ln.l.Close(ln.fd)
}

// accept takes a connection from the listening socket lfd: its socket,
// the client's address (an IPv4 client of a dual-stack listener as IPv4),
// and whether it is IPv6. accept4(2) is called raw: x/sys's Accept4 asks
// the listener its protocol with a getsockopt per connection, and
// allocates the address.
func accept(lfd int) (fd int, peer netip.AddrPort, ipv6 bool, err error) {
	var rsa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, false, e
	}
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		peer = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		a := netip.AddrFrom16(sa.Addr)
		peer, ipv6 = netip.AddrPortFrom(a.Unmap(), port(sa.Port)), !a.Is4In6()
	}
	return int(r), peer, ipv6, nil
}

// port reads a sockaddr's port, in network byte order.
func port(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
