package httpproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
)

// HTTP/2 is the one thing the loop hands off: a connection that opens with
// HTTP/2's preface (h2c, gRPC; inside mTLS between agents too) goes, with
// the bytes the loop read replayed first, to net/http's HTTP/2 server on
// goroutines. Its requests run through the same route table and chains as
// the loop's (chain.go), and go to the app over net/http's h2c transport:
// shared, or the connection's own in tproxy mode, with the PROXY protocol
// and to a meshed peer (h2conn.dialOwn).

// h2conn is a connection handed to net/http's HTTP/2 server, with what the
// proxy knew of it.
type h2conn struct {
	net.Conn
	pre     []byte         // bytes the loop read, replayed first
	client  netip.AddrPort // the real client
	dst     netip.AddrPort // the original destination: the app
	dstAddr string         // dst as host:port, the shared transport's key
	// tls: the connection is veneer's mTLS, from a client whose verified
	// ID is principal (inbound), or to a meshed peer (outbound).
	tls       bool
	principal string

	received, sent atomic.Int64 // bytes from and to the client
	s              *Server
	state          atomic.Int32 // its http.ConnState
	closeOnce      sync.Once
	closed         func(received, sent int64, end string)

	// dialOwn, when set, opens this client's own connections to the app
	// (tproxy mode, the PROXY protocol, a meshed peer): they go through
	// own, never the shared transport.
	dialOwn func(ctx context.Context) (net.Conn, error)
	ownOnce sync.Once
	own     *http.Transport
}

// serveH2 gives c to net/http's HTTP/2 server. It does not block: the
// loop calls it.
func (s *Server) serveH2(c *h2conn) {
	c.s = s
	c.dstAddr = c.dst.String()
	s.live.Store(c, struct{}{})
	s.liveCount.Add(1)
	go func() {
		if !s.ln.push(c) {
			c.Close() // shutting down
		}
	}()
}

// transport is the transport for a request of this connection: the shared
// one, or the connection's own.
func (c *h2conn) transport() http.RoundTripper {
	if c.dialOwn == nil {
		return c.s.h2c
	}
	c.ownOnce.Do(func() {
		c.own = c.s.h2c.Clone()
		c.own.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, connectTimeout(ctx))
			defer cancel()
			return c.dialOwn(ctx)
		}
	})
	return c.own
}

func (c *h2conn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		c.received.Add(int64(n))
		return n, nil
	}
	n, err := c.Conn.Read(b)
	c.received.Add(int64(n))
	return n, err
}

func (c *h2conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(int64(n))
	return n, err
}

func (c *h2conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.s.live.Delete(c)
		c.s.liveCount.Add(-1)
		if c.own != nil {
			c.own.CloseIdleConnections()
		}
		if c.closed != nil {
			c.closed(c.received.Load(), c.sent.Load(), "http")
		}
	})
	return err
}

type connKey struct{}

// connState records net/http's view of each connection, for Shutdown.
func connState(c net.Conn, st http.ConnState) {
	if hc, ok := c.(*h2conn); ok {
		hc.state.Store(int32(st))
	}
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*h2conn); ok {
		return context.WithValue(ctx, connKey{}, hc)
	}
	return ctx
}

// dial connects to the app for the shared transport, within the connect
// timeout of the request's chain.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: connectTimeout(ctx)}
	return d.DialContext(ctx, network, addr)
}

// ServeHTTP starts the request's record and hands it to the chain of its
// port and path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hc, ok := r.Context().Value(connKey{}).(*h2conn)
	if !ok {
		http.Error(w, "veneer: connection without an original destination", http.StatusInternalServerError)
		return
	}
	ex := &exchange.Exchange{Start: time.Now(), Direction: s.direction, Port: hc.dst.Port(), Client: hc.client, Upstream: hc.dst,
		TLS: hc.tls, Principal: hc.principal}
	ew, r := exchange.Begin(w, r, ex, s.bodyIdle)
	rt := s.table.Load().route(hc.dst.Port(), r.URL.Path)
	ex.Route = rt.prefix
	if limit := http1.DefaultLimits.Target; len(r.RequestURI) > limit {
		rt.refuse(ew, r, ex, http.StatusRequestURITooLong, fmt.Sprintf("request target longer than %d bytes", limit))
		return
	}
	rt.serve(ew, r, ex)
}

// handoff is a net.Listener fed by the loop.
type handoff struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoff() *handoff { return &handoff{ch: make(chan net.Conn), done: make(chan struct{})} }

func (h *handoff) push(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return &net.TCPAddr{} }

// forwarder sends an HTTP/2 request to the app, the original destination
// of the client's connection, through ReverseProxy: keeping its Host and
// its own forwarding headers, within the route's connect and request
// timeouts.
type forwarder struct {
	rp               *httputil.ReverseProxy
	connect, request time.Duration
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	exchange.From(r.Context()).ConnectTimeout = f.connect
	if f.request > 0 {
		ctx, cancel := context.WithTimeoutCause(r.Context(), f.request, errRequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	f.rp.ServeHTTP(w, r)
}
