package loop

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop's own syscalls are made raw, without telling the scheduler: none
// of them blocks (every fd is non-blocking), and the scheduler's bookkeeping
// costs more than these short syscalls themselves. More: a syscall that
// runs a while (a connect or a close on loopback carries the handshake or
// the FIN through the whole stack) lets the runtime's monitor take the P
// away and wake another thread for it, and keeps that monitor polling at
// its fastest rate.

func sys(trap, a1, a2, a3 uintptr) (int, error) {
	for {
		r, _, e := unix.RawSyscall(trap, a1, a2, a3)
		if e != unix.EINTR {
			return int(r), errnoErr(e)
		}
	}
}

func sys6(trap, a1, a2, a3, a4, a5, a6 uintptr) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		if e != unix.EINTR {
			return int(r), errnoErr(e)
		}
	}
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func ptr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func read(fd int, b []byte) (int, error) {
	return sys(unix.SYS_READ, uintptr(fd), ptr(b), uintptr(len(b)))
}
func write(fd int, b []byte) (int, error) {
	return sys(unix.SYS_WRITE, uintptr(fd), ptr(b), uintptr(len(b)))
}

// Write is the loop's write(2), for the owners of its sockets.
func Write(fd int, b []byte) (int, error) { return write(fd, b) }

func splice(from, to, n int) (int, error) {
	return sys6(unix.SYS_SPLICE, uintptr(from), 0, uintptr(to), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
}

func shutdownWrite(fd int) { sys(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0) }

func closeFD(fd int) { unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) } // EINTR still closed it

// epollWait returns the events ready now, without waiting.
func epollWait(epfd int, events []unix.EpollEvent) (int, error) {
	return sys6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
}

func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, err := sys6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return err
}

// SetInt sets an integer socket option.
func SetInt(fd, level, opt, v int) error {
	v32 := int32(v)
	_, err := sys6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v32)), 4, 0)
	return err
}

// Reset closes fd with an RST instead of a FIN (SO_LINGER 0): the peer
// learns at once that the connection was refused or broke.
func Reset(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	sys6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
	closeFD(fd)
}

// SocketError is what a failed connect left on fd (SO_ERROR).
func SocketError(fd int) error {
	var v int32
	size := uint32(4)
	if _, err := sys6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&size)), 0); err != nil {
		return err
	}
	return errnoErr(unix.Errno(v))
}

// Connect starts a non-blocking TCP connection to dst: a socket, prepared
// by prepare (options, a local address) before the connect. The socket is
// the caller's to register; Out (or Broken) says when the connect is done.
func Connect(dst netip.AddrPort, prepare func(fd int, ipv6 bool) error) (int, error) {
	ipv6 := !dst.Addr().Is4()
	family := unix.AF_INET
	if ipv6 {
		family = unix.AF_INET6
	}
	fd, err := sys(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := prepare(fd, ipv6); err != nil {
		closeFD(fd)
		return -1, err
	}
	port := [2]byte{byte(dst.Port() >> 8), byte(dst.Port())} // network byte order
	if ipv6 {
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: *(*uint16)(unsafe.Pointer(&port)), Addr: dst.Addr().As16()}
		_, err = sys(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	} else {
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Port: *(*uint16)(unsafe.Pointer(&port)), Addr: dst.Addr().As4()}
		_, err = sys(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	}
	if err != nil && err != unix.EINPROGRESS {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}
