//go:build !linux

package proxy

import (
	"errors"
	"net"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// Off Linux there is no loop to serve on (loop.New fails), so no listener
// or connection is ever made: these only let the package, and the agent
// that imports it, compile on a laptop.

type listener struct{ l *loop.Loop }

func newListener(s *Server, lp *loop.Loop, l *net.TCPListener) (*listener, error) {
	return nil, errors.New("the proxy's data path needs Linux (epoll, splice)")
}

func (ln *listener) close() {}

type conn struct{ s *Server }

func (c *conn) Ready(fd int, ev loop.Events)  {}
func (c *conn) finish(end string, reset bool) {}

const endDrained = "drain_timeout"
