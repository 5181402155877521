//go:build !linux

package tproxy

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

var errLinux = errors.New("tproxy mode needs Linux")

func Transparent(network string, c syscall.RawConn) error { return errLinux }

func Dialer(client netip.Addr, mark uint32, timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout}
}

func LocalDst(fd int, _ bool, listenPort uint16) (netip.AddrPort, error) {
	return netip.AddrPort{}, errLinux
}

func From(fd int, ipv6 bool, client netip.Addr, mark uint32) error { return errLinux }
