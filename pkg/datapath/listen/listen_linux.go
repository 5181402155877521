// Package listen opens the agent's listening sockets with SO_REUSEPORT, so
// that a new agent can bind the same ports while the old one drains: a
// restart with no moment where captured ports refuse connections. With
// net.ipv4.tcp_migrate_req set (veneer-init sets it where it may), the
// connections still queued on the old agent's socket when it closes move to
// the new one instead of being reset.
//
//	l, err := listen.Listen(ctx, ":15006", nil)
//	l, err := listen.Listen(ctx, ":15006", tproxy.Transparent) // tproxy mode
package listen

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listen listens on addr with SO_REUSEPORT, then whatever else extra sets.
func Listen(ctx context.Context, addr string, extra func(network string, c syscall.RawConn) error) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); e != nil {
				serr = fmt.Errorf("setting SO_REUSEPORT: %w", e)
			}
		}); err != nil {
			return err
		}
		if serr != nil || extra == nil {
			return serr
		}
		return extra(network, c)
	}}
	return lc.Listen(ctx, "tcp", addr)
}
