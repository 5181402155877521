// Package tproxy is the agent's side of tproxy mode: a transparent listener
// that accepts connections addressed to any port of the pod (so a
// connection's original destination is simply its local address), and a
// dialer that connects to the app from the client's own address, marked so
// that the app's replies are routed back to the agent (see pkg/intercept/capture).
//
// Both need CAP_NET_ADMIN (IP_TRANSPARENT, SO_MARK).
//
//	l, err := listen.Listen(ctx, ":15006", tproxy.Transparent)
//	dst, err := tproxy.LocalDst(fd, false, 15006)
//	err = tproxy.From(fd, false, client.Addr(), 0x539) // before the loop's connect
//	app, err := tproxy.Dialer(client.Addr(), 0x539, 5*time.Second).DialContext(ctx, "tcp", dst.String())
package tproxy

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/datapath/origdst"
)

// transparent sets IP_TRANSPARENT (IPV6_TRANSPARENT on IPv6 sockets, which
// covers the IPv4-mapped connections of a dual-stack socket), and the mark.
func transparent(network string, c syscall.RawConn, mark uint32) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = setTransparent(int(fd), network)
		if serr == nil && mark != 0 {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); e != nil {
				serr = fmt.Errorf("setting SO_MARK (tproxy mode needs CAP_NET_ADMIN): %w", e)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func setTransparent(fd int, network string) error {
	if network != "tcp4" && unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1) == nil {
		return nil
	}
	if e := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1); e != nil {
		return fmt.Errorf("setting IP_TRANSPARENT (tproxy mode needs CAP_NET_ADMIN): %w", e)
	}
	return nil
}

// Transparent makes a listening socket transparent: pass it to
// listen.Listen.
func Transparent(network string, c syscall.RawConn) error { return transparent(network, c, 0) }

// LocalDst is a transparent connection's original destination: the
// accepted socket fd's local address. A connection made to the listener's
// own port was not handed over by TPROXY: forwarding it would loop.
func LocalDst(fd int, _ bool, listenPort uint16) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading the local address: %w", err)
	}
	var local netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		local = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		local = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	default:
		return netip.AddrPort{}, fmt.Errorf("local address %v is not TCP/IP", sa)
	}
	if local.Port() == listenPort {
		return netip.AddrPort{}, origdst.ErrNotRedirected
	}
	return local, nil
}

// From prepares the unconnected socket fd (IPv6 or not) to connect from
// client's address with the mark that routes the replies back: the loop's
// Dialer.
func From(fd int, ipv6 bool, client netip.Addr, mark uint32) error {
	network := "tcp4"
	if ipv6 {
		network = "tcp6"
	}
	if err := setTransparent(fd, network); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		return fmt.Errorf("setting SO_MARK (tproxy mode needs CAP_NET_ADMIN): %w", err)
	}
	var sa unix.Sockaddr
	if ipv6 {
		sa = &unix.SockaddrInet6{Addr: client.As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: client.Unmap().As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("binding to the client's address %s: %w", client, err)
	}
	return nil
}

// Dialer connects from client's address (a port of the kernel's choosing:
// the client's own port is taken by the agent's end of the client's
// connection) with the mark that routes the replies back.
func Dialer(client netip.Addr, mark uint32, timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		LocalAddr: &net.TCPAddr{IP: client.Unmap().AsSlice()},
		Control: func(network, _ string, c syscall.RawConn) error {
			return transparent(network, c, mark)
		},
	}
}
