//go:build !linux

package listen

import (
	"context"
	"net"
	"syscall"
)

// Listen listens on addr; SO_REUSEPORT is Linux's.
func Listen(ctx context.Context, addr string, extra func(network string, c syscall.RawConn) error) (net.Listener, error) {
	var lc net.ListenConfig
	if extra != nil {
		lc.Control = func(network, _ string, c syscall.RawConn) error { return extra(network, c) }
	}
	return lc.Listen(ctx, "tcp", addr)
}
