package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/veneermesh/veneer/pkg/mtls"
	"github.com/veneermesh/veneer/pkg/sniff"
)

// The mTLS path. A connection that is, or goes to, a meshed peer leaves
// the loop for goroutines of its own, as connections net/http serves do:
// crypto/tls reads and writes through Go's poller. Inbound, the agent
// ends the peer's TLS (terminate) and gives the plaintext the protocol
// selection and decorations of any connection: HTTP to the HTTP server,
// the rest relayed to the app. Outbound, HTTP goes to the HTTP server
// with a dialer that connects to the peer with mTLS; the rest is relayed
// over mTLS (tunnel).

// handshakeTimeout bounds an mTLS handshake, either way.
const handshakeTimeout = 10 * time.Second

// How an mTLS connection ended, beside the ends of conn_linux.go.
const (
	endNotMTLS   = "mtls_required"         // a strict port: the client is not a meshed peer
	endHandshake = "mtls_handshake_failed" // the TLS handshake failed, or the peer's SVID did not verify
)

// meshed is the step of inbound ports with mTLS: a ClientHello offering
// veneer's ALPN is ended here, on the mTLS path; on a strict port anything
// else is reset. A permissive port waits for a first byte only as long as
// the early sniff does, so that server-first protocols are not held up; a
// ClientHello that comes later is still seen by the sniff (hear).
// Outbound, it finds whether the destination is a meshed peer.
func (c *conn) meshed() verdict {
	if c.s.cfg.Direction == "outbound" {
		c.plain = true // a ClientHello here is the app's own TLS
		c.mesh = c.s.policies.Load().PeerFor(c.dst)
		if c.mesh != nil {
			c.tls = true
			if c.opaque {
				return c.tunnel()
			}
		}
		return next
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
// connection: a meshed peer's ClientHello goes to the mTLS path; anything
// else on a strict port is reset, and on a permissive one is plaintext
// (c.plain) from here on.
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

// leaveLoop takes the client's socket off the loop as a net.Conn, with the
// bytes read from it so far; a connection to the app already open is
// closed (the mTLS path opens its own). On failure the connection is
// closed, and counted so.
func (c *conn) leaveLoop() (net.Conn, []byte, bool) {
	c.done = true
	c.l.Disarm(&c.timer)
	c.l.Disarm(&c.again)
	pre := append([]byte(nil), c.up.Pending()...)
	c.up.Release(c.l)
	c.down.Release(c.l)
	if c.app.FD >= 0 {
		c.l.Close(c.app.FD)
		c.app.FD = -1
	}
	nc, err := c.leave(c.client.FD)
	c.started()
	c.s.onLoop.Add(-1)
	if err != nil {
		c.s.log.Warn().Err(err).Stringer("client", c.peer).Msg("moving the connection to the mTLS path failed")
		c.closed(0, 0, endUnreachable)
		return nil, nil, false
	}
	c.s.tlsLive.Add(1)
	return nc, pre, true
}

// terminate ends a meshed peer's TLS on a goroutine of its own.
func (c *conn) terminate() verdict {
	if nc, pre, ok := c.leaveLoop(); ok {
		go c.serveTLS(nc, pre)
	}
	return gone
}

// serveTLS handshakes with the peer, authorizes it by its verified ID,
// and serves the plaintext as the port's protocol says.
func (c *conn) serveTLS(nc net.Conn, pre []byte) {
	defer c.s.tlsLive.Add(-1)
	tc := tls.Server(&replayConn{Conn: nc, pre: pre}, c.s.serverTLS)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.s.log.Warn().Err(err).Stringer("client", c.peer).Stringer("original_dst", c.dst).Msg("mTLS handshake failed")
		resetConn(nc)
		c.closed(0, 0, endHandshake)
		return
	}
	cs := tc.ConnectionState()
	c.s.metrics.handshakes.WithLabelValues(c.s.cfg.Direction, strconv.FormatBool(cs.DidResume)).Inc()
	id, _ := mtls.PeerID(cs)
	c.tls, c.principal = true, id.String()
	if c.pol.Authz != nil && !c.pol.Authz.Allowed("", "", c.peer.Addr(), c.principal) {
		resetConn(nc)
		c.closed(0, 0, endDenied)
		return
	}
	first, p := c.sniffTLS(tc)
	if p != sniff.TCP && c.s.http != nil {
		c.s.http.ServeConn(c.handoff(tc, first))
		return
	}
	app, err := c.s.dialGo(context.Background(), c.peer, c.dst, c.pol)
	if err != nil {
		resetConn(nc)
		c.closed(0, 0, dialEnd(err))
		return
	}
	c.relay(&replayConn{Conn: tc, pre: first}, app)
}

// sniffTLS is the protocol selection of the plaintext: the port's
// protocol, or on an auto port what the client's first bytes say. A
// client silent for earlyWait is taken for a server-first protocol (TCP);
// bytes that begin something HTTP are read until they decide, up to the
// sniff timeout. It returns the bytes it read.
func (c *conn) sniffTLS(tc *tls.Conn) ([]byte, sniff.Proto) {
	switch {
	case c.pol.Protocol == ProtoTCP || c.s.http == nil:
		return nil, sniff.TCP
	case c.pol.Protocol == ProtoHTTP:
		return nil, sniff.HTTP1
	}
	buf := make([]byte, sniff.MaxPeek)
	n := 0
	tc.SetReadDeadline(time.Now().Add(earlyWait))
	defer tc.SetReadDeadline(time.Time{})
	for {
		m, err := tc.Read(buf[n:])
		if n == 0 && m > 0 {
			tc.SetReadDeadline(time.Now().Add(c.pol.SniffTimeout))
		}
		n += m
		if p, decided := sniff.Decide(buf[:n]); decided {
			return buf[:n], p
		}
		if err != nil {
			return buf[:n], sniff.TCP // silence, EOF, or an error the relay meets again
		}
	}
}

// handoff is the connection as the HTTP server takes it, over nc.
func (c *conn) handoff(nc net.Conn, pre []byte) Handoff {
	h := Handoff{Conn: nc, Pre: pre, Client: c.peer, Dst: c.dst, Closed: c.closed, TLS: c.tls, Principal: c.principal}
	switch {
	case c.mesh != nil:
		peer := c.mesh
		h.Dial = func(ctx context.Context) (net.Conn, error) { return c.s.dialPeer(ctx, c.peer, c.dst, c.pol, peer) }
	case c.s.cfg.Mark != 0 || c.pol.ProxyProtocol != 0:
		pol := c.pol
		h.Dial = func(ctx context.Context) (net.Conn, error) { return c.s.dialGo(ctx, c.peer, c.dst, pol) }
	}
	return h
}

// tunnel relays an outbound connection to a meshed peer over mTLS, on a
// goroutine of its own.
func (c *conn) tunnel() verdict {
	nc, pre, ok := c.leaveLoop()
	if !ok {
		return gone
	}
	go func() {
		defer c.s.tlsLive.Add(-1)
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ConnectTimeout+handshakeTimeout)
		app, err := c.s.dialPeer(ctx, c.peer, c.dst, c.pol, c.mesh)
		cancel()
		if err != nil {
			resetConn(nc)
			c.closed(0, 0, peerEnd(err))
			return
		}
		c.relay(&replayConn{Conn: nc, pre: pre}, app)
	}()
	return gone
}

// dialPeer connects to a meshed peer and handshakes with mTLS, verifying
// that it is one of the IDs the peer may have. It never falls back to
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
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		s.log.Warn().Err(err).Stringer("original_dst", dst).Msg("mTLS handshake with a meshed peer failed; not sending it plaintext")
		return nil, &handshakeError{err}
	}
	s.metrics.handshakes.WithLabelValues(s.cfg.Direction, strconv.FormatBool(tc.ConnectionState().DidResume)).Inc()
	return tc, nil
}

var errNoIdentity = errors.New("no SVID to handshake with")

// handshakeError is a failed mTLS handshake with a peer that was reached.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "mTLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

func peerEnd(err error) string {
	var he *handshakeError
	if errors.As(err, &he) || errors.Is(err, errNoIdentity) {
		return endHandshake
	}
	return dialEnd(err)
}

// relay copies bytes both ways between the client and the app until both
// directions end, passing each half-close on; a reset (an error other than
// EOF) on either side resets the other. It then closes both, and counts
// and logs the connection.
func (c *conn) relay(client, app net.Conn) {
	c.s.relays.Store(client, app)
	defer c.s.relays.Delete(client)
	var idle *idleWatch
	if d := c.pol.IdleTimeout; d > 0 {
		idle = watchIdle(d, client, app)
		defer idle.stop()
	}
	type half struct {
		n   int64
		err error
	}
	down := make(chan half, 1)
	go func() {
		n, err := pipe(client, app, idle)
		down <- half{n, err}
	}()
	upN, upErr := pipe(app, client, idle)
	if upErr != nil && !idle.fired() {
		resetConn(app) // the client broke: so does the app's side, which ends the other pipe
	}
	d := <-down
	end := endEOF
	switch {
	case idle.fired():
		end = endIdle
	case upErr != nil:
		end = endClientReset
	case d.err != nil:
		end = endAppReset
		resetConn(client)
	}
	client.Close()
	app.Close()
	c.closed(upN, d.n, end)
}

// pipe copies src to dst until src ends, then half-closes dst. It returns
// the bytes copied and src's error, nil for EOF; on a failure to write to
// dst, it resets src, so that the other direction ends too.
func pipe(dst, src net.Conn, idle *idleWatch) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		m, err := src.Read(buf)
		if m > 0 {
			idle.moved()
			w, werr := dst.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				resetConn(src)
				return n, werr
			}
		}
		if errors.Is(err, io.EOF) {
			closeWrite(dst)
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if tc, ok := c.(*tls.Conn); ok {
		// close_notify, then the TCP half-close: the peer's agent reads
		// EOF either way.
		closeWrite(tc.NetConn())
	}
}

// resetConn closes c with an RST (SO_LINGER 0), whatever wraps it.
func resetConn(c net.Conn) {
	for {
		switch v := c.(type) {
		case *replayConn:
			c = v.Conn
			continue
		case *tls.Conn:
			c = v.NetConn()
			continue
		case *net.TCPConn:
			v.SetLinger(0)
		}
		c.Close()
		return
	}
}

// replayConn reads pre first: the bytes the loop read before the
// connection left it.
type replayConn struct {
	net.Conn
	pre []byte
}

func (r *replayConn) Read(b []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(b, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.Conn.Read(b)
}

func (r *replayConn) CloseWrite() error {
	closeWrite(r.Conn)
	return nil
}

// idleWatch ends a relay on which nothing moved either way for d: it
// sets both connections' deadlines to now, which ends both pipes. A nil
// idleWatch watches nothing.
type idleWatch struct {
	t    *time.Timer
	d    time.Duration
	done atomic.Bool
}

func watchIdle(d time.Duration, conns ...net.Conn) *idleWatch {
	w := &idleWatch{d: d}
	w.t = time.AfterFunc(d, func() {
		w.done.Store(true)
		for _, c := range conns {
			c.SetDeadline(time.Now())
		}
	})
	return w
}

// moved restarts the wait: bytes moved.
func (w *idleWatch) moved() {
	if w != nil && !w.done.Load() {
		w.t.Reset(w.d)
	}
}

func (w *idleWatch) fired() bool { return w != nil && w.done.Load() }

func (w *idleWatch) stop() { w.t.Stop() }
