package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/origdst"
	"github.com/veneermesh/veneer/pkg/probe"
	"github.com/veneermesh/veneer/pkg/proxyproto"
	"github.com/veneermesh/veneer/pkg/sniff"
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

func (s *Server) handle(c *net.TCPConn) {
	defer s.conns.Done()
	started := false
	start := func() {
		if !started {
			started = true
			s.starting.Done()
		}
	}
	defer start()
	counted := true // s.open counts c until closed or passed to conn.closed
	defer func() {
		if counted {
			s.open.Add(-1)
		}
	}()
	begin := time.Now()
	client := unmap(c.RemoteAddr().(*net.TCPAddr).AddrPort())

	dst, err := s.cfg.OriginalDst(c)
	if err != nil {
		end := endOrigDstError
		if errors.Is(err, origdst.ErrNotRedirected) {
			end = endNotRedirect
		}
		reset(c)
		s.log.Warn().Err(err).Stringer("client", client).Str("end", end).
			Msg("refused connection: no original destination to forward to")
		return
	}
	if s.cfg.IsProbe(dst) {
		c.Write([]byte(probe.Reply(dst)))
		c.Close()
		s.log.Info().Stringer("client", client).Stringer("original_dst", dst).Str("end", endProbe).Msg("answered validation probe")
		return
	}

	pol := s.policies.Load().For(dst.Port())
	pm := s.metrics.port(s.cfg.Direction, dst.Port())
	pm.opened.Inc()
	pm.active.Inc()
	c2 := &conn{s: s, pm: pm, c: c, client: client, dst: dst, start: begin}
	counted = false // c2.closed uncounts it
	if pol.Authz != nil && !pol.Authz.Allowed("", "", client.Addr()) {
		reset(c)
		c2.closed(0, 0, endDenied)
		return
	}
	h := Handoff{Conn: c, Client: client, Dst: dst, Closed: c2.closed}
	if s.cfg.OwnConns || pol.ProxyProtocol != 0 {
		h.Dial = func(ctx context.Context) (net.Conn, error) { return s.dial(ctx, client, dst, pol) }
	}
	if pol.Protocol == ProtoHTTP && s.http != nil {
		s.http.ServeConn(h)
		start()
		return
	}
	var early []byte
	if pol.Protocol == ProtoAuto && s.http != nil {
		got, proto, decided := sniff.Early(c, earlyWait)
		if decided && proto != sniff.TCP {
			// HTTP, told before connecting: the HTTP server's pooled
			// connections to the app serve it.
			h.Pre = got
			s.http.ServeConn(h)
			start()
			return
		}
		early = got
		if decided {
			tcp := *pol // client-first, not HTTP
			tcp.Protocol = ProtoTCP
			pol = &tcp
		}
	}
	ctx, cancel := context.WithTimeout(s.kill, s.cfg.ConnectTimeout)
	up, err := s.dial(ctx, client, dst, pol)
	cancel()
	if err != nil {
		reset(c)
		c2.closed(0, 0, dialEnd(err))
		return
	}
	app := up.(*net.TCPConn)
	fromClient, fromApp := early, []byte(nil)
	if pol.Protocol == ProtoAuto && s.http != nil {
		r := sniff.Sniff(c, app, pol.SniffTimeout, early)
		if r.Proto != sniff.TCP {
			h.Pre, h.App = r.FromClient, app
			s.http.ServeConn(h)
			start()
			return
		}
		fromClient, fromApp = r.FromClient, r.FromApp
	}
	start()
	received, sent, end := s.forward(c, app, fromClient, fromApp, pol.IdleTimeout)
	c2.closed(received, sent, end)
}

// earlyWait is how long a connection on an auto port waits for the
// client's first bytes before the agent connects to the app (sniff.Early).
const earlyWait = 10 * time.Millisecond

// conn is one captured connection's record, closed once.
type conn struct {
	s      *Server
	pm     *portMetrics
	c      *net.TCPConn
	client netip.AddrPort
	dst    netip.AddrPort
	start  time.Time
}

// closed counts and logs the end of the connection. For HTTP connections
// the HTTP server calls it when it closes the connection.
func (c *conn) closed(received, sent int64, end string) {
	c.s.open.Add(-1)
	c.pm.received.Add(float64(received))
	c.pm.sent.Add(float64(sent))
	c.pm.active.Dec()
	c.pm.closed.Inc()
	c.s.log.Info().
		Stringer("client", c.client).
		Stringer("original_dst", c.dst).
		Int64("bytes_received", received).
		Int64("bytes_sent", sent).
		Float64("duration_ms", float64(time.Since(c.start).Microseconds())/1000).
		Str("end", end).
		Msg("connection closed")
}

// dial connects to the app at dst for client, and starts the connection
// with the PROXY protocol header when the port asks for it.
func (s *Server) dial(ctx context.Context, client, dst netip.AddrPort, pol *Policy) (net.Conn, error) {
	c, err := s.cfg.Dial(ctx, client, dst)
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

// forward copies both ways between client and app until both sides are
// done, first delivering what was read from either side while sniffing, or
// until no bytes have moved either way for idleTimeout (0: no limit).
// received counts client-to-app bytes, sent app-to-client bytes.
func (s *Server) forward(client, app *net.TCPConn, fromClient, fromApp []byte, idleTimeout time.Duration) (received, sent int64, end string) {
	// A drain that runs out of time, or an idle connection, closes both
	// sides, which ends both copies.
	closeBoth := func() {
		client.Close()
		app.Close()
	}
	stop := context.AfterFunc(s.kill, closeBoth)
	it := newIdle(idleTimeout, closeBoth)

	done := make(chan copyResult, 1)
	go copyToApp(app, client, fromClient, it, done)
	sent, sendErr := copyHalf(client, app, fromApp, it)
	if sendErr != nil {
		// One side broke: break the other too, so the other copy ends now.
		closeBoth()
	}
	r := <-done
	drained := !stop()
	idled := it.stop()
	closeBoth()
	switch {
	case drained:
		end = endDrained
	case idled:
		end = endIdle
	case r.err != nil:
		end = endClientReset
	case sendErr != nil:
		end = endAppReset
	default:
		end = endEOF
	}
	return r.n, sent, end
}

type copyResult struct {
	n   int64
	err error
}

// copyToApp is the client-to-app half, run on its own goroutine.
func copyToApp(app, client *net.TCPConn, first []byte, it *idle, done chan<- copyResult) {
	n, err := copyHalf(app, client, first, it)
	if err != nil {
		client.Close()
		app.Close()
	}
	done <- copyResult{n, err}
}

// reset closes c with an RST instead of a FIN, so a client learns at once that
// its connection was refused.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// unmap shows an IPv4 client of the dual-stack listener as IPv4.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func dialEnd(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return endRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return endTimeout
	case errors.Is(err, context.Canceled):
		return endDrained
	}
	return endUnreachable
}
