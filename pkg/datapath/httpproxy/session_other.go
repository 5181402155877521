//go:build !linux

package httpproxy

import "github.com/veneermesh/veneer/pkg/datapath/proxy"

// closeSessions has no loop sessions to close off Linux: the proxy does
// not run there (it needs epoll and splice), so nothing is served.
func (s *Server) closeSessions(all bool) {}

// ServeLoop is never called off Linux: the proxy has no loop there.
func (s *Server) ServeLoop(c proxy.LoopConn) {}
