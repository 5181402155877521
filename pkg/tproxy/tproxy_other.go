//go:build !linux

package tproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

var errLinux = errors.New("tproxy mode needs Linux")

func Listen(ctx context.Context, addr string) (net.Listener, error) { return nil, errLinux }

func OriginalDst(listenPort uint16) func(*net.TCPConn) (netip.AddrPort, error) {
	return func(*net.TCPConn) (netip.AddrPort, error) { return netip.AddrPort{}, errLinux }
}

func Dialer(client netip.Addr, mark uint32, timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout}
}
