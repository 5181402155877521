package proxy

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"time"

	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// Protocols a port can be set to.
const (
	ProtoAuto = "auto" // sniff the first bytes of either side
	ProtoHTTP = "http" // always HTTP: no sniffing
	ProtoTCP  = "tcp"  // opaque: never parsed
)

// mTLS modes of an inbound port.
const (
	MTLSOff        = "off"        // no mTLS: a meshed peer's TLS is forwarded as opaque bytes
	MTLSPermissive = "permissive" // mTLS from meshed peers, plaintext from everyone else
	MTLSStrict     = "strict"     // mTLS from meshed peers only: anything else is reset
)

// Authorizer decides whether a client may connect: by its address and, a
// meshed peer, its verified ID (method and path are empty at L4). The
// port's authorization rules (pkg/decor/authz) are one.
type Authorizer interface {
	Allowed(method, path string, client netip.Addr, principal string) bool
}

// Policy is what the proxy does with connections to one port.
type Policy struct {
	Protocol     string
	SniffTimeout time.Duration
	Authz        Authorizer // nil: every client allowed
	// ProxyProtocol is the PROXY protocol version (1 or 2) written to the
	// app at the start of every connection; 0: none.
	ProxyProtocol int
	// IdleTimeout closes a passthrough connection on which no bytes have
	// moved either way for this long; 0: never.
	IdleTimeout time.Duration
	// MTLS is the port's mTLS mode (inbound); "" is off.
	MTLS string
}

// Policies are the policies of every port, swapped whole on reload.
type Policies struct {
	Ports   map[uint16]*Policy
	Default *Policy
	// Peers are the meshed destinations (outbound): the agent connects to
	// them with mTLS, and never in plaintext.
	Peers []*Peer
}

// Peer is a meshed destination: addresses, ports (none: every port) and
// the IDs the server there may have (none: any of the trust domain).
type Peer struct {
	Prefixes []netip.Prefix
	Ports    []uint16
	Want     []identity.Pattern
	tls      *tls.Config // set by SetPolicies
}

// PeerFor is the peer dst is, or nil.
func (ps *Policies) PeerFor(dst netip.AddrPort) *Peer {
	a := dst.Addr().Unmap()
	for _, p := range ps.Peers {
		if (len(p.Ports) == 0 || slices.Contains(p.Ports, dst.Port())) &&
			slices.ContainsFunc(p.Prefixes, func(pr netip.Prefix) bool { return pr.Contains(a) }) {
			return p
		}
	}
	return nil
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

// SetPolicies swaps in the policies of every port; connections already
// accepted keep the policy they started with. Ports with mTLS and peers
// need the server's Identity.
func (s *Server) SetPolicies(ps *Policies) {
	for _, p := range ps.Peers {
		p.tls = s.clientTLS(p.Want)
	}
	s.policies.Store(ps)
}
