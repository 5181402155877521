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
	endProbe        = "validation_probe" // veneer-init --validate
	endDenied       = "denied"           // the port's TCP authorization refused the client
	endOrigDstError = "original_dst_error"
)

func (s *Server) handle(c *net.TCPConn) {
	defer s.conns.Done()
	start := time.Now()
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
	pm := s.metrics.port(dst.Port())
	pm.opened.Inc()
	pm.active.Inc()
	c2 := &conn{s: s, pm: pm, c: c, client: client, dst: dst, start: start}
	if pol.Authz != nil && !pol.Authz.Allowed("", "", client.Addr()) {
		reset(c)
		c2.closed(0, 0, endDenied)
		return
	}
	if pol.Protocol == ProtoHTTP && s.http != nil {
		s.http.ServeConn(c, nil, client, dst, nil, c2.closed)
		return
	}
	app, end := s.dial(dst)
	if app == nil {
		reset(c)
		c2.closed(0, 0, end)
		return
	}
	var fromClient, fromApp []byte
	if pol.Protocol == ProtoAuto && s.http != nil {
		r := sniff.Sniff(c, app, pol.SniffTimeout)
		if r.Proto != sniff.TCP {
			s.http.ServeConn(c, r.FromClient, client, dst, app, c2.closed)
			return
		}
		fromClient, fromApp = r.FromClient, r.FromApp
	}
	received, sent, end := s.forward(c, app, fromClient, fromApp)
	c2.closed(received, sent, end)
}

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

// dial connects to the app at dst, or says why it could not.
func (s *Server) dial(dst netip.AddrPort) (*net.TCPConn, string) {
	ctx, cancel := context.WithTimeout(s.kill, s.cfg.ConnectTimeout)
	defer cancel()
	up, err := s.dialer.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return nil, dialEnd(err)
	}
	return up.(*net.TCPConn), ""
}

// forward copies both ways between client and app until both sides are
// done, first delivering what was read from either side while sniffing.
// received counts client-to-app bytes, sent app-to-client bytes.
func (s *Server) forward(client, app *net.TCPConn, fromClient, fromApp []byte) (received, sent int64, end string) {
	// A drain that runs out of time closes both sides, which ends both copies.
	stop := context.AfterFunc(s.kill, func() {
		client.Close()
		app.Close()
	})

	done := make(chan copyResult, 1)
	go copyToApp(app, client, fromClient, done)
	sent, sendErr := copyHalf(client, app, fromApp)
	if sendErr != nil {
		// One side broke: break the other too, so the other copy ends now.
		client.Close()
		app.Close()
	}
	r := <-done
	drained := !stop()
	client.Close()
	app.Close()
	switch {
	case drained:
		end = endDrained
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
func copyToApp(app, client *net.TCPConn, first []byte, done chan<- copyResult) {
	n, err := copyHalf(app, client, first)
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
