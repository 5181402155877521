package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/proxyproto"
	"github.com/veneermesh/veneer/pkg/datapath/tproxy"
)

// How a connection ended, as the connection log line says it.
const (
	endEOF          = "eof"              // both sides closed cleanly
	endClientReset  = "client_reset"     // the client reset or broke the connection
	endAppReset     = "app_reset"        // the app reset or broke the connection
	endRefused      = "app_refused"      // nothing listens at the original destination
	endTimeout      = "app_timeout"      // the app did not accept within the connect timeout
	endUnreachable  = "app_unreachable"  // any other failure to reach the app
	endNotRedirect  = "not_redirected"   // no nat rule sent it here: refused, never looped
	endDrained      = "drain_timeout"    // still open when the drain ran out of time
	endIdle         = "idle_timeout"     // no bytes either way for the port's tcp.idleTimeout
	endProbe        = "validation_probe" // veneer-init --validate
	endDenied       = "denied"           // the port's TCP authorization refused the client
	endOrigDstError = "original_dst_error"
)

// conn is one captured connection on a loop: its sockets, the step it is
// at (steps_linux.go), and its bytes each way.
type conn struct {
	s           *Server
	ln          *listener
	l           *loop.Loop
	client, app loop.Socket // app.FD is -1 until the dial
	peer, dst   netip.AddrPort
	ipv6        bool
	pol         *Policy
	pm          *portMetrics // nil until the open step: not counted per port, not logged
	opaque      bool         // forwarded as bytes: the protocol is decided, or never sniffed
	plain       bool         // not a meshed peer's TLS: no mTLS on the port, or its first bytes said so
	mesh        *Peer        // outbound: the meshed peer it goes to, with mTLS; nil: plaintext
	tls         bool         // mTLS: from a meshed peer (inbound), or to one (outbound)
	principal   string       // inbound mTLS: the client's verified SPIFFE ID

	at       int        // index of the step it is at
	timer    loop.Timer // the deadline of the step it is at
	again    loop.Timer // another turn for a flow that yielded (forwardAgain)
	timedOut bool       // the timer expired; the step says what that means
	up, down loop.Flow  // client to app, app to client

	start, lastMoved time.Time
	starting         bool // counted in Server.starting
	done             bool // closed, or handed off
}

// accepted starts a connection's record on its listener's loop.
func (s *Server) accepted(ln *listener, fd int, peer netip.AddrPort, ipv6 bool) {
	s.lastAccept.Store(ln.l.Now().UnixNano())
	// Over the limit: refused at once, so that a flood costs the agent no
	// record and no memory.
	if n := s.open.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		s.open.Add(-1)
		loop.Reset(fd)
		s.rejected.Inc()
		return
	}
	c := &conn{s: s, ln: ln, l: ln.l, client: loop.Socket{FD: fd, Write: loop.Ready}, app: loop.Socket{FD: -1},
		peer: peer, ipv6: ipv6, start: ln.l.Now(), starting: true}
	c.timer.SetExpirer(c)
	c.again.SetExpirer((*forwardAgain)(c))
	if err := ln.l.Add(fd, c); err != nil {
		s.open.Add(-1)
		loop.Reset(fd)
		s.log.Warn().Err(err).Stringer("client", peer).Msg("refused connection")
		return
	}
	s.onLoop.Add(1)
	s.starting.Add(1)
	c.advance()
}

func (c *conn) Ready(fd int, ev loop.Events) {
	if fd == c.client.FD {
		c.client.Note(ev)
	} else {
		c.app.Note(ev)
	}
	c.advance()
}

func (c *conn) Expire() {
	c.timedOut = true
	c.advance()
}

// forwardAgain is a connection seen by its again timer: its flows yielded
// on the last turn, and pump on now.
type forwardAgain conn

func (c *forwardAgain) Expire() { (*conn)(c).advance() }

// advance runs the steps from the one the connection is at, until one
// waits or the connection leaves the loop. Each step's deadline is its
// own: it is cleared when the next step begins.
func (c *conn) advance() {
	for c.at < len(steps) && !c.done {
		if steps[c.at](c) != next {
			return
		}
		c.at++
		c.l.Disarm(&c.timer)
		c.timedOut = false
	}
}

// within starts the current step's deadline d the first time it is asked,
// and says whether that deadline is still ahead.
func (c *conn) within(d time.Duration) bool {
	if c.timedOut {
		return false
	}
	if !c.timer.Armed() {
		c.l.Arm(&c.timer, c.l.Now().Add(d))
	}
	return true
}

// started notes that the connection is forwarding, or left the loop.
func (c *conn) started() {
	if c.starting {
		c.starting = false
		c.s.starting.Add(-1)
	}
}

// finish closes the connection, with an RST on each socket when reset
// (a refusal, or a reset mirrored to the other side), and counts its end.
// A connection is finished once; finishing it again does nothing.
func (c *conn) finish(end string, reset bool) {
	if c.done {
		return
	}
	c.done = true
	c.l.Disarm(&c.timer)
	c.l.Disarm(&c.again)
	c.up.Release(c.l)
	c.down.Release(c.l)
	for _, s := range [...]*loop.Socket{&c.client, &c.app} {
		if s.FD >= 0 {
			c.l.CloseSocket(s, reset)
		}
	}
	c.started()
	c.s.onLoop.Add(-1)
	c.closed(c.up.Moved, c.down.Moved, end)
}

// closed counts and logs the end of the connection. For HTTP connections
// the HTTP server calls it, on its own goroutine, when it closes the
// connection. Connections refused before the open step are not counted
// per port; their own steps log them.
func (c *conn) closed(received, sent int64, end string) {
	c.s.open.Add(-1)
	if c.pm == nil {
		return
	}
	c.pm.received.Add(float64(received))
	c.pm.sent.Add(float64(sent))
	c.pm.active.Dec()
	c.pm.closed[b2i(c.tls)].Inc()
	ev := c.s.log.Info().
		Stringer("client", c.peer).
		Stringer("original_dst", c.dst).
		Int64("bytes_received", received).
		Int64("bytes_sent", sent).
		Float64("duration_ms", float64(time.Since(c.start).Microseconds())/1000).
		Str("end", end).
		Bool("tls", c.tls)
	if c.principal != "" {
		ev = ev.Str("peer_principal", c.principal)
	}
	ev.Msg("connection closed")
}

// handOff gives the connection to the HTTP server's handler on this
// loop: its sockets stay registered, and its record here ends. In tproxy
// mode and with the PROXY protocol its connections to the app are its own.
func (c *conn) handOff() verdict {
	if c.mesh != nil && c.mesh.tls == nil {
		return c.refusePeer(errNoIdentity)
	}
	c.done = true
	c.l.Disarm(&c.timer)
	c.l.Disarm(&c.again)
	lc := LoopConn{Loop: c.l, Client: c.client, App: c.app, Pre: c.up.Pending(), Peer: c.peer, Dst: c.dst,
		Prepare: c.prepare, Closed: c.closed, TLS: c.tls, Principal: c.principal, Handshook: c.s.countHandshake,
		Dial: c.dialer()}
	if c.mesh != nil {
		lc.Upstream = c.mesh.tls
	}
	if v := c.pol.ProxyProtocol; v != 0 {
		lc.Header = proxyproto.Header(v, c.peer, c.dst)
	}
	lc.Own = c.s.cfg.Mark != 0 || lc.Header != nil
	c.started()
	c.s.onLoop.Add(-1)
	c.s.http.ServeLoop(lc)
	c.up.Release(c.l) // after ServeLoop took a copy of Pre
	c.down.Release(c.l)
	return gone
}

// dialGo connects to the app for a client from a goroutine of the HTTP
// server (its own connections, in tproxy mode or with the PROXY protocol),
// and starts the connection with the PROXY protocol header when the port
// asks for it.
func (s *Server) dialGo(ctx context.Context, client, dst netip.AddrPort, pol *Policy) (net.Conn, error) {
	d := &net.Dialer{}
	if s.cfg.Mark != 0 {
		d = tproxy.Dialer(client.Addr(), s.cfg.Mark, 0)
	}
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return nil, err
	}
	if pol.ProxyProtocol != 0 {
		if _, err := c.Write(proxyproto.Header(pol.ProxyProtocol, client, dst)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// prepare sets up a socket to the app before its connect: the options
// every socket of the agent has, and in tproxy mode the client's address.
func (c *conn) prepare(fd int, ipv6 bool) error {
	if err := setOptions(fd); err != nil {
		return err
	}
	if c.s.cfg.Mark != 0 {
		return tproxy.From(fd, ipv6, c.peer.Addr(), c.s.cfg.Mark)
	}
	return nil
}

func dialEnd(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return endRefused
	case errors.Is(err, syscall.ETIMEDOUT):
		return endTimeout
	}
	return endUnreachable
}
