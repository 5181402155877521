package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strconv"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/looptls"
	"github.com/veneermesh/veneer/pkg/datapath/sniff"
	"github.com/veneermesh/veneer/pkg/mesh/mtls"
)

// mTLS on the loop. A meshed peer's connection stays on the loop that
// accepted it: its socket gets a TLS layer (pkg/datapath/looptls) whose handshake
// runs on a goroutine of its own, and from then on the connection's steps
// read and write plaintext through it as they would the socket. Inbound,
// the agent ends the peer's TLS and gives the plaintext the protocol
// selection and decorations of any connection. Outbound, the connection
// to a meshed peer gets the layer once connected; HTTP to a peer goes to
// the HTTP session, which handshakes its own pooled connections.

// How an mTLS connection ended, beside the ends of conn_linux.go.
const (
	endNotMTLS   = "mtls_required"         // a strict port: the client is not a meshed peer
	endHandshake = "mtls_handshake_failed" // the TLS handshake failed, or the peer's SVID did not verify
)

// meshed is the step of inbound ports with mTLS: a ClientHello offering
// veneer's ALPN is ended here, with a handshake on the loop; on a strict
// port anything else is reset. A permissive port waits for a first byte
// only as long as the early sniff does, so that server-first protocols are
// not held up; a ClientHello that comes later is still seen by the sniff
// (hear). Outbound, it finds whether the destination is a meshed peer.
func (c *conn) meshed() verdict {
	if c.s.cfg.Direction == "outbound" {
		c.plain = true // a ClientHello here is the app's own TLS
		c.mesh = c.s.policies.Load().PeerFor(c.dst)
		c.tls = c.mesh != nil
		return next
	}
	if hs, ok := c.client.Layer.(*looptls.Conn); ok {
		return c.handshaking(hs, &c.client)
	}
	if c.pol.MTLS == "" || c.pol.MTLS == MTLSOff {
		c.plain = true
		return next
	}
	if v, decided := c.hello(); decided {
		return v
	}
	d := earlyWait
	if c.pol.MTLS == MTLSStrict || len(c.up.Pending()) > 0 {
		d = c.pol.SniffTimeout // a strict port, or a ClientHello under way
	}
	if c.within(d) {
		return wait
	}
	if c.pol.MTLS == MTLSStrict {
		c.refuseTLS()
		return gone
	}
	return next
}

// hello reads what the client has sent and says whether it decides the
// connection: a meshed peer's ClientHello is ended here; anything else on
// a strict port is reset, and on a permissive one is plaintext (c.plain)
// from here on.
func (c *conn) hello() (verdict, bool) {
	if err := c.up.Fill(c.l, &c.client, sniff.MaxHello); err != nil {
		c.finish(endClientReset, true)
		return gone, true
	}
	switch sniff.PeerHello(c.up.Pending(), mtls.ALPN) {
	case sniff.HelloPeer:
		if c.s.serverTLS != nil { // without an identity (the agent refuses such a config), no peer is taken
			return c.terminate(), true
		}
	case sniff.HelloNeedMore:
		if !c.up.EOF {
			return wait, false
		}
	}
	if c.pol.MTLS == MTLSStrict {
		c.refuseTLS()
		return gone, true
	}
	c.plain = true
	return next, true
}

// refuseTLS resets a connection that a strict port does not take.
func (c *conn) refuseTLS() {
	c.s.log.Warn().Stringer("client", c.peer).Stringer("original_dst", c.dst).Str("end", endNotMTLS).
		Msg("refused connection: the port takes mTLS from meshed peers only")
	c.finish(endNotMTLS, true)
}

// terminate starts the handshake with a meshed peer, from the ClientHello
// read so far. The connection is plaintext from then on, whatever the
// protocol selection finds inside.
func (c *conn) terminate() verdict {
	hs := looptls.Server(c.l, &c.client, c.s.serverTLS, c.up.Pending())
	c.client.Layer = hs
	c.up.Release(c.l)
	c.up.EOF = false
	c.plain = true
	c.l.Disarm(&c.timer) // the sniff's deadline: the handshake has its own
	c.timedOut = false
	return c.handshaking(hs, &c.client)
}

// handshaking waits for the handshake on s to end within its timeout: a
// failure resets the connection (and never sends a peer plaintext); else
// the peer's verified ID is the connection's principal.
func (c *conn) handshaking(hs *looptls.Conn, s *loop.Socket) verdict {
	var err error
	switch hs.State() {
	case looptls.Handshaking:
		if c.within(mtls.HandshakeTimeout) {
			return wait
		}
		err = errHandshakeTimeout
	case looptls.Failed:
		err = hs.Err()
	}
	if err != nil {
		c.s.log.Warn().Err(err).Stringer("client", c.peer).Stringer("original_dst", c.dst).Msg("mTLS handshake failed")
		c.finish(endHandshake, true)
		return gone
	}
	cs := hs.ConnectionState()
	c.s.countHandshake(cs)
	if s == &c.client {
		id, _ := mtls.PeerID(cs)
		c.tls, c.principal = true, id.String()
	}
	return next
}

var errHandshakeTimeout = errors.New("timed out")

// countHandshake counts a completed handshake.
func (s *Server) countHandshake(cs tls.ConnectionState) {
	s.metrics.handshakes.WithLabelValues(s.cfg.Direction, strconv.FormatBool(cs.DidResume)).Inc()
}

// secure is the step of connections to a meshed peer: once connected, the
// mTLS handshake with it, verifying that it is one of the IDs the peer
// may have. A failure resets the client: a peer never gets plaintext.
func (c *conn) secure() verdict {
	if c.mesh == nil {
		return next
	}
	hs, ok := c.app.Layer.(*looptls.Conn)
	if !ok {
		if c.mesh.tls == nil {
			return c.refusePeer(errNoIdentity)
		}
		hs = looptls.Client(c.l, &c.app, c.mesh.tls)
		c.app.Layer = hs
	}
	return c.handshaking(hs, &c.app)
}

var errNoIdentity = errors.New("no SVID to handshake with")

// refusePeer resets a connection to a meshed peer that cannot be made
// with mTLS: it never goes in plaintext.
func (c *conn) refusePeer(err error) verdict {
	c.s.log.Warn().Err(err).Stringer("original_dst", c.dst).Msg("mTLS handshake with a meshed peer failed; not sending it plaintext")
	c.finish(endHandshake, true)
	return gone
}

// dialPeer connects to a meshed peer from a goroutine of the HTTP server
// and handshakes with mTLS, verifying that it is one of the IDs the peer
// may have: for the connections handed to it, which must not share the
// loop's (tproxy mode, the PROXY protocol). It never falls back to
// plaintext.
func (s *Server) dialPeer(ctx context.Context, client, dst netip.AddrPort, pol *Policy, peer *Peer) (net.Conn, error) {
	if peer.tls == nil {
		return nil, errNoIdentity
	}
	raw, err := s.dialGo(ctx, client, dst, pol)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, peer.tls)
	hctx, cancel := context.WithTimeout(ctx, mtls.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		s.log.Warn().Err(err).Stringer("original_dst", dst).Msg("mTLS handshake with a meshed peer failed; not sending it plaintext")
		return nil, err
	}
	s.countHandshake(tc.ConnectionState())
	return tc, nil
}

// dialer opens this client's own connections to the app from a goroutine
// (for HTTP/2, which the HTTP server hands to net/http's): with mTLS to a
// meshed peer, from the client's address in tproxy mode, with its PROXY
// protocol header. Nil when the shared pool serves.
func (c *conn) dialer() func(ctx context.Context) (net.Conn, error) {
	switch {
	case c.mesh != nil:
		peer, pol := c.mesh, c.pol
		return func(ctx context.Context) (net.Conn, error) { return c.s.dialPeer(ctx, c.peer, c.dst, pol, peer) }
	case c.s.cfg.Mark != 0 || c.pol.ProxyProtocol != 0:
		pol := c.pol
		return func(ctx context.Context) (net.Conn, error) { return c.s.dialGo(ctx, c.peer, c.dst, pol) }
	}
	return nil
}
