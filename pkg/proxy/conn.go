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

	pm := s.metrics.port(dst.Port())
	pm.opened.Inc()
	pm.active.Inc()
	received, sent, end := s.forward(c, dst)
	pm.received.Add(float64(received))
	pm.sent.Add(float64(sent))
	pm.active.Dec()
	pm.closed.Inc()

	s.log.Info().
		Stringer("client", client).
		Stringer("original_dst", dst).
		Int64("bytes_received", received).
		Int64("bytes_sent", sent).
		Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
		Str("end", end).
		Msg("connection closed")
}

// forward connects to dst and copies both ways until both sides are done.
// received counts client-to-app bytes, sent app-to-client bytes.
func (s *Server) forward(client *net.TCPConn, dst netip.AddrPort) (received, sent int64, end string) {
	ctx, cancel := context.WithTimeout(s.kill, s.cfg.ConnectTimeout)
	up, err := s.dialer.DialContext(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		reset(client)
		return 0, 0, dialEnd(err)
	}
	app := up.(*net.TCPConn)

	// A drain that runs out of time closes both sides, which ends both copies.
	stop := context.AfterFunc(s.kill, func() {
		client.Close()
		app.Close()
	})

	done := make(chan copyResult, 1)
	go copyToApp(app, client, done)
	sent, sendErr := copyHalf(client, app)
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
func copyToApp(app, client *net.TCPConn, done chan<- copyResult) {
	n, err := copyHalf(app, client)
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
