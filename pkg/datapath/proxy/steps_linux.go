package proxy

import (
	"errors"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/origdst"
	"github.com/veneermesh/veneer/pkg/datapath/proxyproto"
	"github.com/veneermesh/veneer/pkg/datapath/sniff"
	"github.com/veneermesh/veneer/pkg/intercept/probe"
)

// verdict is what a step says of its connection.
type verdict uint8

const (
	next verdict = iota // this step is done: on to the next
	wait                // waiting for a socket or the timer: this step runs again then
	gone                // closed, or handed to the HTTP server: the connection left the loop
)

// steps are what every accepted connection goes through, in this order, on
// the loop that accepted it. --max-connections comes before all of them:
// past it the listener resets a connection before it has a record. Then
// the refusals that cost least come first, so a refused connection costs
// nothing more; the protocol is decided before the app is dialled when the
// client's first bytes tell it (HTTP then uses the HTTP server's pooled
// connections to the app), else after, when whichever side speaks first
// tells it; what is not HTTP is forwarded as bytes until both sides end.
var steps = [...]func(*conn) verdict{
	(*conn).findDst,     // where it was going: SO_ORIGINAL_DST, or TPROXY's local address; not redirected: reset
	(*conn).answerProbe, // veneer-init --validate's probe: answered with its destination and closed
	(*conn).open,        // the port's policy and metrics: from here on the connection is counted and logged
	(*conn).meshed,      // mTLS ports: a meshed peer's ClientHello is ended here, the handshake on the loop (mesh_linux.go), strict ones reset the rest; outbound: is the destination a meshed peer
	(*conn).authorize,   // the port's TCP authorization, of the client's address and a meshed peer's verified ID: a client it denies is reset
	(*conn).sniffEarly,  // HTTP ports, and auto ports whose client speaks within earlyWait: HTTP is handed off here
	(*conn).dial,        // a non-blocking connect within the connect timeout; the PROXY protocol header first
	(*conn).secure,      // to a meshed peer: the mTLS handshake, within its timeout; a failure resets the client
	(*conn).sniff,       // auto ports still undecided: the app speaking first, or the client's bytes, decide
	(*conn).forward,     // bytes both ways, each half-close passed on, until both sides are done
}

// earlyWait is how long a connection on an auto port waits for the
// client's first bytes before the agent connects to the app. Most HTTP
// clients send their request with the handshake, so an HTTP connection is
// usually decided here; a server-first protocol waits only this long.
const earlyWait = 10 * time.Millisecond

func (c *conn) findDst() verdict {
	dst, err := c.s.cfg.OriginalDst(c.client.FD, c.ipv6, c.ln.port)
	if err != nil {
		end := endOrigDstError
		if errors.Is(err, origdst.ErrNotRedirected) {
			end = endNotRedirect
		}
		c.s.log.Warn().Err(err).Stringer("client", c.peer).Str("end", end).
			Msg("refused connection: no original destination to forward to")
		c.finish(end, true)
		return gone
	}
	c.dst = dst
	return next
}

func (c *conn) answerProbe() verdict {
	if !c.s.cfg.IsProbe(c.dst) {
		return next
	}
	// A fresh socket's send buffer takes one line whole.
	loop.Write(c.client.FD, []byte(probe.Reply(c.dst)))
	c.s.log.Info().Stringer("client", c.peer).Stringer("original_dst", c.dst).Str("end", endProbe).Msg("answered validation probe")
	c.finish(endProbe, false)
	return gone
}

func (c *conn) open() verdict {
	c.pol = c.s.policies.Load().For(c.dst.Port())
	c.pm = c.s.metrics.port(c.s.cfg.Direction, c.dst.Port())
	c.pm.opened.Inc()
	c.pm.active.Inc()
	c.opaque = c.pol.Protocol == ProtoTCP || c.s.http == nil
	return next
}

func (c *conn) authorize() verdict {
	if c.pol.Authz != nil && !c.pol.Authz.Allowed("", "", c.peer.Addr(), c.principal) {
		c.finish(endDenied, true)
		return gone
	}
	return next
}

func (c *conn) sniffEarly() verdict {
	switch {
	case c.opaque:
		return next
	case c.pol.Protocol == ProtoHTTP:
		return c.handOff()
	}
	if v, heard := c.hear(); heard {
		return v
	}
	if c.within(earlyWait) {
		return wait
	}
	if c.mesh != nil {
		c.opaque = true // silence: a server-first protocol, over mTLS to the peer
	}
	return next // silence: the app may speak first
}

// hear reads what the client has sent so far and says whether that
// decides the connection: HTTP is handed off; another protocol, or the
// client's EOF, is forwarded as bytes from the next step on (to a meshed
// peer: over mTLS). On a port with mTLS, a meshed peer's ClientHello that
// came after the meshed step stopped waiting is ended here.
func (c *conn) hear() (verdict, bool) {
	if !c.plain {
		if v, decided := c.hello(); !decided || v != next {
			return v, decided
		}
	}
	if err := c.up.Fill(c.l, &c.client, sniff.MaxPeek); err != nil {
		c.finish(endClientReset, true)
		return gone, true
	}
	p, decided := sniff.Decide(c.up.Pending())
	switch {
	case decided && p != sniff.TCP:
		return c.handOff(), true
	case decided, c.up.EOF:
		c.opaque = true // client-first and not HTTP, or gone: the forward passes the EOF on
		return next, true
	}
	return wait, false
}

func (c *conn) dial() verdict {
	if c.app.FD < 0 {
		fd, err := loop.Connect(c.dst, c.prepare)
		if err == nil {
			if err = c.l.Add(fd, c); err != nil {
				loop.Reset(fd)
			}
		}
		if err != nil {
			c.finish(dialEnd(err), true)
			return gone
		}
		c.app = loop.Socket{FD: fd} // Waiting both ways: Out says connected, or failed
	}
	if !c.within(c.s.cfg.ConnectTimeout) {
		c.finish(endTimeout, true)
		return gone
	}
	if c.app.Write == loop.Waiting {
		return wait
	}
	// Writable and not broken is connected (HAProxy's check, too): only a
	// failure costs a getsockopt, for its reason.
	if c.app.Broken {
		// A connect that failed, or an app that accepted and reset (or
		// closed) before the loop looked: that is the app breaking the
		// connection, not failing to take it.
		err := loop.SocketError(c.app.FD)
		end := dialEnd(err)
		if err == nil || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			end = endAppReset
		}
		c.finish(end, true)
		return gone
	}
	if v := c.pol.ProxyProtocol; v != 0 {
		// A socket just connected takes a header of at most 108 bytes whole.
		h := proxyproto.Header(v, c.peer, c.dst)
		if n, err := loop.Write(c.app.FD, h); err != nil || n != len(h) {
			c.finish(endUnreachable, true)
			return gone
		}
	}
	return next
}

func (c *conn) sniff() verdict {
	if c.opaque {
		return next
	}
	if err := c.down.Fill(c.l, &c.app, sniff.MaxPeek); err != nil {
		c.finish(endAppReset, true)
		return gone
	}
	if !c.down.Idle() || c.down.EOF {
		return next // the app spoke (or left) first: not a client-first protocol
	}
	if v, heard := c.hear(); heard {
		return v
	}
	if c.within(c.pol.SniffTimeout) {
		return wait
	}
	return next // neither spoke within the sniff timeout: forwarded as TCP
}

func (c *conn) forward() verdict {
	if c.starting {
		c.started()
		c.lastMoved = c.l.Now()
	}
	if idle := c.pol.IdleTimeout; idle > 0 && !c.within(idle) {
		// Quiet for the whole timeout ends the connection; else the
		// timer is set again for the rest of it, from when bytes last moved.
		if quiet := c.l.Now().Sub(c.lastMoved); quiet >= idle {
			c.finish(endIdle, false)
			return gone
		}
		c.timedOut = false
		c.l.Arm(&c.timer, c.lastMoved.Add(idle))
	}
	moved := c.up.Moved + c.down.Moved
	end := loop.PumpPair(c.l, &c.up, &c.down, &c.client, &c.app)
	if c.up.Moved+c.down.Moved != moved {
		c.lastMoved = c.l.Now()
	}
	switch end {
	case loop.ClientBroke:
		c.finish(endClientReset, true)
	case loop.AppBroke:
		c.finish(endAppReset, true)
	case loop.Closed:
		c.finish(endEOF, false)
	case loop.Again:
		c.l.Arm(&c.again, c.l.Now())
		return wait
	default:
		return wait
	}
	return gone
}
