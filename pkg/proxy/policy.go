package proxy

import (
	"net"
	"net/netip"
	"time"

	"github.com/veneermesh/veneer/pkg/authz"
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

// HTTPServer takes the connections that carry HTTP. closed is called once
// when it is done with one, with the bytes each way and how it ended.
type HTTPServer interface {
	ServeConn(c net.Conn, pre []byte, client, dst netip.AddrPort, app net.Conn, closed func(received, sent int64, end string))
}

// SetPolicies swaps in the policies of every port; connections already
// accepted keep the policy they started with.
func (s *Server) SetPolicies(ps *Policies) { s.policies.Store(ps) }
