package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/veneermesh/veneer/pkg/identity"
	"github.com/veneermesh/veneer/pkg/loop"
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

// HTTPServer serves the connections found to carry HTTP, on the loop
// that accepted them: their sockets stay registered where they are and are
// given to the server's handler (pkg/httpproxy's session).
type HTTPServer interface {
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
	// TLS: the client is a meshed peer whose TLS ended on Client's Layer,
	// its verified SPIFFE ID Principal (inbound); or the app is a meshed
	// peer, reached with mTLS (outbound).
	TLS       bool
	Principal string
	// Upstream, when set, is the mTLS configuration the connections to
	// the app handshake with (the app is a meshed peer); Handshook counts
	// each completed handshake.
	Upstream  *tls.Config
	Handshook func(tls.ConnectionState)
	// Own: the connections to the app serve this client only, never
	// another (tproxy mode: they come from the client's address; the PROXY
	// protocol: they start with the client's header). Header, when set,
	// is what each new one starts with.
	Own    bool
	Header []byte
	// Dial opens this client's own connection to the app (with mTLS, to a
	// meshed peer) from a goroutine, for HTTP/2, which the server hands to
	// net/http's; nil: net/http's shared pool.
	Dial func(ctx context.Context) (net.Conn, error)
}

// SetPolicies swaps in the policies of every port; connections already
// accepted keep the policy they started with. Ports with mTLS and peers
// need the server's Identity.
func (s *Server) SetPolicies(ps *Policies) {
	for _, p := range ps.Peers {
		p.tls = s.clientTLS(p.Want)
	}
	s.policies.Store(ps)
}
