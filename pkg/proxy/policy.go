package proxy

import (
	"github.com/veneermesh/veneer/pkg/loop"

	"context"
	"net"
	"net/netip"
	"time"

	"github.com/veneermesh/veneer/pkg/decor/authz"
)

// Protocols a port can be set to.
const (
	ProtoAuto = "auto" // sniff the first bytes of either side
	ProtoHTTP = "http" // always HTTP: no sniffing
	ProtoTCP  = "tcp"  // opaque: never parsed
)

// Policy is what the proxy does with connections to one port.
type Policy struct {
	Protocol     string
	SniffTimeout time.Duration
	Authz        *authz.Authz // nil: every client allowed
	// ProxyProtocol is the PROXY protocol version (1 or 2) written to the
	// app at the start of every connection; 0: none.
	ProxyProtocol int
	// IdleTimeout closes a passthrough connection on which no bytes have
	// moved either way for this long; 0: never.
	IdleTimeout time.Duration
}

// Policies are the policies of every port, swapped whole on reload.
type Policies struct {
	Ports   map[uint16]*Policy
	Default *Policy
}

// For is the policy of port p.
func (ps *Policies) For(p uint16) *Policy {
	if pol, ok := ps.Ports[p]; ok {
		return pol
	}
	return ps.Default
}

// defaultPolicies forward everything as TCP: what the proxy does before it
// is given a config, and without an HTTP server.
var defaultPolicies = &Policies{Default: &Policy{Protocol: ProtoTCP}}

// Handoff is a connection found to carry HTTP, with what the proxy knows.
type Handoff struct {
	Conn   net.Conn
	Pre    []byte         // bytes already read from Conn while sniffing
	Client netip.AddrPort // the real client
	Dst    netip.AddrPort // the original destination: the app
	App    net.Conn       // a connection to the app opened while sniffing, or nil
	// Dial, when set, opens this client's own connections to the app: in
	// tproxy mode they come from the client's address, with the PROXY
	// protocol they start with the client's header. Such connections must
	// never serve another client. Nil: connections to the app are shared.
	Dial func(ctx context.Context) (net.Conn, error)
	// Closed is called once, when the connection closes, with the bytes
	// each way and how it ended.
	Closed func(received, sent int64, end string)
}

// HTTPServer takes the connections that carry HTTP.
type HTTPServer interface {
	ServeConn(h Handoff)
}

// LoopServer is an HTTPServer that also serves connections on the loop
// that accepted them, without a hand-off: the connection's sockets stay
// registered where they are and are given to the server's handler.
type LoopServer interface {
	HTTPServer
	ServeLoop(c LoopConn)
}

// LoopConn is a connection found to carry HTTP, kept on its loop.
type LoopConn struct {
	Loop   *loop.Loop
	Client loop.Socket    // registered on Loop
	App    loop.Socket    // a connection to the app dialled while sniffing, registered too; FD -1 when none
	Pre    []byte         // bytes already read from the client, valid during ServeLoop only
	Peer   netip.AddrPort // the real client
	Dst    netip.AddrPort // the original destination: the app
	// Prepare sets up a socket to the app before its connect (loop.Connect).
	Prepare func(fd int, ipv6 bool) error
	// Closed is called once, when the connection closes, with the bytes
	// each way and how it ended.
	Closed func(received, sent int64, end string)
}

// SetPolicies swaps in the policies of every port; connections already
// accepted keep the policy they started with.
func (s *Server) SetPolicies(ps *Policies) { s.policies.Store(ps) }
