// Package httpproxy is the agent's HTTP path: connections the proxy found
// to carry HTTP are served here, each request run through the decoration
// chain of its port and path (pkg/decor) and forwarded to the app over
// pooled keep-alive connections.
//
// HTTP/1 is served on the event loop that accepted the connection
// (session_linux.go, exchange_linux.go, apps_linux.go): heads parsed in
// place by pkg/http1, bodies streamed and re-framed, the loop's own
// connections to the app (pooled per app, per meshed peer over mTLS, or
// per client in tproxy mode and with the PROXY protocol), every wait a
// socket edge or a loop timer; an Upgrade the app takes becomes a tunnel
// on the loop (tunnel_linux.go). What the loop does not serve (h2c, an
// Upgrade with a body, CONNECT, absolute-form targets) it hands to
// net/http's path with the bytes it read replayed: Go's HTTP server, the
// same chain, and net/http's transports.
//
//	h, err := httpproxy.New(log, httpproxy.Options{Access: accessLog}, registry)
//	err = h.Apply(cfg)                          // at start and on reload
//	go h.Serve()                                // net/http's path
//	proxy.New(proxy.Config{HTTP: h, ...})       // the proxy calls h.ServeLoop or h.ServeConn per connection
//	h.Shutdown(ctx)
package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/decor/circuit"
	"github.com/veneermesh/veneer/pkg/decor/metrics"
	"github.com/veneermesh/veneer/pkg/decor/ratelimit"
	"github.com/veneermesh/veneer/pkg/decor/requestid"
	"github.com/veneermesh/veneer/pkg/decor/stats"
	"github.com/veneermesh/veneer/pkg/decor/tap"
	"github.com/veneermesh/veneer/pkg/decor/timeout"
	"github.com/veneermesh/veneer/pkg/exchange"
	"github.com/veneermesh/veneer/pkg/pool"
	"github.com/veneermesh/veneer/pkg/proxy"
	"github.com/veneermesh/veneer/pkg/rawhead"
	"github.com/veneermesh/veneer/pkg/upstream"
)

// Server serves the HTTP connections handed to it.
type Server struct {
	log       zerolog.Logger
	access    io.Writer
	direction string
	draining  atomic.Bool
	live      sync.Map // *conn -> struct{}: connections handed over and not closed
	liveCount atomic.Int64
	bodyIdle  time.Duration
	// headerTimeout bounds the wait for a request head once it began;
	// idle (nanoseconds, set by Apply) the wait for the next request.
	headerTimeout time.Duration
	idle          atomic.Int64
	metrics       *metrics.Metrics
	tap           *tap.Tap
	spans         requestid.Spans
	stats         atomic.Pointer[stats.Stats]
	// errorLog takes net/http's own complaints (a malformed request, a
	// proxy error already answered and logged) at debug level.
	errorLog *stdlog.Logger

	srv   *http.Server
	ln    *handoff
	h1    *upstream.Transport // HTTP/1.1 to the app on the handler's goroutine, pooled
	std   *http.Transport     // net/http's, for what h1 passes on (upgrades, large bodies)
	h2c   *http.Transport     // HTTP/2 without TLS, for h2c clients (gRPC)
	table atomic.Pointer[table]

	// loops are the event loops serving HTTP on the loop's path, and each
	// one's state (*loop.Loop -> *loopState); upstreamIdle bounds the idle
	// life of their pooled connections to the app.
	loops        sync.Map
	upstreamIdle time.Duration

	// The rate limits' buckets and the breakers' counts, by owner (a port,
	// or a route with its own): they outlive the chains of one config.
	limiters *pool.Pool[ratelimit.Config, *ratelimit.Limiter]
	breakers *pool.Pool[circuit.Config, *circuit.Breaker]
}

// Options are what a Server shares with the rest of the agent.
type Options struct {
	// Direction labels the exchanges: inbound (the default) or outbound.
	Direction string
	// Access receives the access log lines, one Write each (the agent gives
	// it its log sink).
	Access io.Writer // nil: discarded
	// Metrics are shared by every server of the agent; nil: registered anew
	// on the registry given to New.
	Metrics *metrics.Metrics
	// Tap is the admin page's live tap, shared by every server; nil: none.
	Tap *tap.Tap
	// Spans takes the spans of sampled requests on routes with tracing on
	// (the agent's OTLP exporter); nil: none are recorded.
	Spans requestid.Spans
	// HeaderTimeout bounds the wait for a request's head (slowloris); 0
	// means 10s. BodyIdle bounds each wait for more of a request's body; 0
	// means 30s.
	HeaderTimeout, BodyIdle time.Duration
	// UpstreamIdle is how long a pooled keep-alive connection to the app
	// may idle before it is closed; 0 means 90s.
	UpstreamIdle time.Duration
}

// maxURI is the longest request target forwarded; longer ones get 414.
const maxURI = 8 << 10

// New builds the server; Apply must give it a config before Serve.
func New(log zerolog.Logger, o Options, reg prometheus.Registerer) (*Server, error) {
	if o.Direction == "" {
		o.Direction = "inbound"
	}
	if o.HeaderTimeout == 0 {
		o.HeaderTimeout = 10 * time.Second
	}
	if o.BodyIdle == 0 {
		o.BodyIdle = 30 * time.Second
	}
	if o.UpstreamIdle == 0 {
		o.UpstreamIdle = 90 * time.Second
	}
	m := o.Metrics
	if m == nil {
		var err error
		if m, err = metrics.New(reg); err != nil {
			return nil, fmt.Errorf("registering HTTP metrics: %w", err)
		}
	}
	if o.Access == nil {
		o.Access = io.Discard
	}
	s := &Server{log: log, access: o.Access, metrics: m, tap: o.Tap, spans: o.Spans, ln: newHandoff(), direction: o.Direction, bodyIdle: o.BodyIdle,
		headerTimeout: o.HeaderTimeout, upstreamIdle: o.UpstreamIdle, errorLog: stdlog.New(debugWriter{log}, "", 0),
		limiters: pool.New(ratelimit.New, nil),
		breakers: pool.New(func(c circuit.Config) *circuit.Breaker { return circuit.New(c.MaxRequests) },
			func(b *circuit.Breaker, c circuit.Config) bool { b.SetMax(c.MaxRequests); return true })}
	h2 := new(http.Protocols)
	h2.SetUnencryptedHTTP2(true)
	// DisableCompression: a transparent hop adds no Accept-Encoding the
	// client did not send, and decompresses nothing.
	s.std = &http.Transport{
		DialContext:        s.dial,
		DisableCompression: true,
		// Keep as many idle connections as were busy at the peak: closing
		// the surplus after every burst leaves a TIME_WAIT per connection
		// on the pod's own address, and under steady churn those use up the
		// ports the agent connects from (EADDRNOTAVAIL: seen in the full
		// load test with a limit of 256). Idle ones still close after
		// UpstreamIdle.
		MaxIdleConnsPerHost: 1 << 16,
		IdleConnTimeout:     o.UpstreamIdle,
	}
	s.h1 = upstream.New(s.dial, o.UpstreamIdle, s.std)
	s.h1.GotConn, s.h1.Got1xx = responseCase, informational
	s.h2c = &http.Transport{DialContext: s.dial, Protocols: h2, DisableCompression: true, IdleConnTimeout: o.UpstreamIdle}
	serverProtos := new(http.Protocols)
	serverProtos.SetHTTP1(true)
	serverProtos.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:           s,
		Protocols:         serverProtos,
		ReadHeaderTimeout: o.HeaderTimeout, // slow heads (slowloris) end here
		MaxHeaderBytes:    maxHead,         // the loop's bound too
		ConnContext:       connContext,
		ConnState:         connState,
		ErrorLog:          s.errorLog,
	}
	return s, nil
}

// Apply builds the chains for cfg and swaps them in: requests already under
// way finish on the chains they started with.
func (s *Server) Apply(cfg *config.Config) error {
	// The profiler outlives configs; its bound is the first config's.
	s.stats.CompareAndSwap(nil, stats.New(cfg.Stats.MaxPaths))
	t, err := s.build(cfg)
	if err != nil {
		return err
	}
	to, ok := config.Get[timeout.Config](cfg.Default.HTTP, timeout.Key)
	if !ok {
		to = timeout.Defaults
	}
	idle := to.Idle.D()
	if s.table.Load() == nil {
		// net/http's server reads its fields while it serves, so only the
		// first config (applied before Serve, as New says) sets its idle
		// timeout: a reload's reaches the loop's connections (s.idle), and
		// those net/http serves (h2c, upgrades) keep the first. Writing it
		// on every reload was a data race with Serve.
		s.srv.IdleTimeout = idle
	}
	s.idle.Store(int64(idle))
	s.table.Store(t)
	return nil
}

// Stats is the per-path profiler, for the admin endpoint.
func (s *Server) Stats() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.stats.Load().ServeHTTP(w, r) })
}

// Serve serves handed-over connections until Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// StartDrain makes every response from now on close its connection
// ("Connection: close"), so that clients move to other endpoints while the
// agent drains. Idle keep-alive connections are not closed under a client
// that may be sending on them: each is closed after its next response, and
// Shutdown closes the rest.
func (s *Server) StartDrain() { s.draining.Store(true) }

// Shutdown stops taking connections, closes idle keep-alive connections and
// waits for requests in flight until ctx is done, then closes the rest.
//
// Not net/http's Shutdown: that drops a request read after it began, which a
// connection handed over just before the drain may still send; here every
// connection that is not idle gets its answer.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StartDrain()
	s.ln.Close()
	defer s.h1.CloseIdle()
	defer s.std.CloseIdleConnections()
	defer s.h2c.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.live.Range(func(k, _ any) bool {
			if hc := k.(*conn); hc.state.Load() == int32(http.StateIdle) {
				hc.Close() // idle keep-alive: as net/http's Shutdown does
			}
			return true
		})
		s.closeSessions(false)
		if s.liveCount.Load() == 0 {
			s.srv.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			s.live.Range(func(k, _ any) bool { k.(*conn).Close(); return true })
			s.closeSessions(true)
			s.srv.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// debugWriter logs what it is given at debug level.
type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Str("from", "net/http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// conn is a connection handed over by the proxy, with what it knows.
type conn struct {
	net.Conn
	pre     []byte         // bytes already read while sniffing, replayed first
	again   []byte         // bytes the HTTP/1 loop read, replayed to net/http (counted once)
	client  netip.AddrPort // the real client
	dst     netip.AddrPort // the original destination: the app
	dstAddr string         // dst as host:port, the app's pool key
	// tls: the connection is veneer's mTLS, from a client whose verified
	// ID is principal (inbound), or to a meshed peer (outbound).
	tls       bool
	principal string
	mu        sync.Mutex
	app       net.Conn // a connection to the app opened while sniffing, for the first request

	names          rawhead.Head // what the client's raw request heads said
	received, sent atomic.Int64 // bytes from and to the client
	s              *Server
	state          atomic.Int32 // its http.ConnState
	closeOnce      sync.Once
	closed         func(received, sent int64, end string)

	// dialOwn, when set, opens this client's own connections to the app
	// (tproxy mode, PROXY protocol): they go through own, never the shared
	// pool.
	dialOwn func(ctx context.Context) (net.Conn, error)
	ownOnce sync.Once
	ownH1   *upstream.Transport
	own     [2]*http.Transport // net/http's HTTP/1.1 (ownH1's fallback) and h2c
}

// transport is the transport for a request of this connection: the shared
// pool, or the connection's own.
func (c *conn) transport(s *Server, h2 bool) http.RoundTripper {
	if c.dialOwn == nil {
		if h2 {
			return s.h2c
		}
		return s.h1
	}
	c.ownOnce.Do(func() {
		dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
			if a := c.takeApp(); a != nil {
				return &appConn{Conn: a}, nil
			}
			ctx, cancel := context.WithTimeout(ctx, connectTimeout(ctx))
			defer cancel()
			a, err := c.dialOwn(ctx)
			if err != nil {
				return nil, err
			}
			return &appConn{Conn: a}, nil
		}
		c.own[0] = s.std.Clone()
		c.own[0].DialContext = dial
		c.own[1] = s.h2c.Clone()
		c.own[1].DialContext = dial
		c.ownH1 = upstream.New(dial, s.std.IdleConnTimeout, c.own[0])
		c.ownH1.GotConn, c.ownH1.Got1xx = responseCase, informational
	})
	if h2 {
		return c.own[1]
	}
	return c.ownH1
}

func (c *conn) Read(b []byte) (int, error) {
	if len(c.again) > 0 {
		n := copy(b, c.again)
		c.again = c.again[n:]
		return n, nil
	}
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		c.received.Add(int64(n))
		c.names.Learn(b[:n])
		return n, nil
	}
	n, err := c.Conn.Read(b)
	c.received.Add(int64(n))
	if n > 0 {
		c.names.Learn(b[:n])
	}
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(int64(n))
	return n, err
}

// takeApp returns the connection to the app opened while sniffing, once.
func (c *conn) takeApp() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.app
	c.app = nil
	return a
}

// CloseWrite lets net/http half-close, as it does before closing a
// connection it rejected.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	if a := c.takeApp(); a != nil {
		a.Close()
	}
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.s.live.Delete(c)
		c.s.liveCount.Add(-1)
		if c.ownH1 != nil {
			c.ownH1.CloseIdle()
		}
		for _, t := range c.own {
			if t != nil {
				t.CloseIdleConnections()
			}
		}
		if c.closed != nil {
			c.closed(c.received.Load(), c.sent.Load(), "http")
		}
	})
	return err
}

// ServeConn serves a connection the proxy found to carry HTTP.
func (s *Server) ServeConn(h proxy.Handoff) {
	hc := &conn{s: s, Conn: h.Conn, pre: h.Pre, client: h.Client, dst: h.Dst, dstAddr: h.Dst.String(), app: h.App, closed: h.Closed, dialOwn: h.Dial,
		tls: h.TLS, principal: h.Principal}
	s.live.Store(hc, struct{}{})
	s.liveCount.Add(1)
	go s.serveHTTP1(hc)
}

type connKey struct{}

// connState records net/http's view of each connection, for Shutdown.
func connState(c net.Conn, st http.ConnState) {
	if hc, ok := c.(*conn); ok {
		hc.state.Store(int32(st))
	}
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*conn); ok {
		return context.WithValue(ctx, connKey{}, hc)
	}
	return ctx
}

// dial connects to the app: with the connection opened while sniffing when
// this request's client connection has one, else anew, within the connect
// timeout of the request's chain.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if hc, ok := ctx.Value(connKey{}).(*conn); ok && hc.dstAddr == addr {
		if a := hc.takeApp(); a != nil {
			return &appConn{Conn: a}, nil
		}
	}
	d := net.Dialer{Timeout: connectTimeout(ctx)}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &appConn{Conn: c}, nil
}

// appConn is a connection to the app that learns the header spellings of
// the app's responses.
type appConn struct {
	net.Conn
	names rawhead.Head // what the app's raw response heads said
}

// SyscallConn is the socket's, for the pool's liveness check.
func (c *appConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

func (c *appConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.names.Learn(b[:n])
	}
	return n, err
}

// ServeHTTP starts the request's record and hands it to the chain of its
// port and path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hc, ok := r.Context().Value(connKey{}).(*conn)
	if !ok {
		http.Error(w, "veneer: connection without an original destination", http.StatusInternalServerError)
		return
	}
	if s.draining.Load() && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	ex := &exchange.Exchange{Start: time.Now(), Direction: s.direction, Port: hc.dst.Port(), Client: hc.client, Upstream: hc.dst,
		TLS: hc.tls, Principal: hc.principal}
	ew, r := exchange.Begin(w, r, ex, s.bodyIdle)
	rt := s.table.Load().route(hc.dst.Port(), r.URL.Path)
	ex.Route = rt.prefix
	// Framing that request smuggling relies on, which net/http would
	// forgive: refused before any decoration or the app sees it.
	if v := hc.names.Violation(); v != "" && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
		rt.refuse(ew, r, ex, http.StatusBadRequest, "malformed request: "+v)
		return
	}
	if len(r.RequestURI) > maxURI {
		w.Header().Set("Connection", "close")
		rt.refuse(ew, r, ex, http.StatusRequestURITooLong, fmt.Sprintf("request target longer than %d bytes", maxURI))
		return
	}
	rt.serve(ew, r, ex)
}

// handoff is a net.Listener fed by the proxy.
type handoff struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
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
	h.closed.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return &net.TCPAddr{} }
