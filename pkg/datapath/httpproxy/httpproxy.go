// Package httpproxy is the agent's HTTP path: connections the proxy found
// to carry HTTP are served here, each request run through the decoration
// chain of its port and path (pkg/decor) and forwarded to the app over
// pooled keep-alive connections.
//
// HTTP/1 is served on the event loop that accepted the connection, and
// nowhere else (session_linux.go, forward_linux.go, perloop_linux.go): heads
// parsed in place by pkg/datapath/http1, bodies streamed and re-framed, the loop's
// own connections to the app (pooled per app, per meshed peer over mTLS,
// or per client in tproxy mode and with the PROXY protocol), every wait a
// socket edge or a loop timer; an Upgrade or a CONNECT the app takes
// becomes a tunnel on the loop (tunnel_linux.go). HTTP/2 (h2c, and h2
// inside mTLS) is handed to net/http's HTTP/2 server with the bytes the
// loop read replayed (h2.go): the same chain, and net/http's h2c transport.
//
//	h, err := httpproxy.New(log, httpproxy.Options{Access: accessLog}, registry)
//	err = h.Apply(cfg)                          // at start and on reload
//	go h.Serve()                                // net/http's HTTP/2 server
//	proxy.New(proxy.Config{HTTP: h, ...})       // the proxy calls h.ServeLoop per HTTP connection
//	h.Shutdown(ctx)
package httpproxy

import (
	"context"
	"errors"
	"io"
	stdlog "log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/decor/timeout"
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
	// shared is what the decorations keep across builds and share across
	// the agent's servers (decor.Shared); reg where they register metrics.
	shared *decor.Shared
	reg    prometheus.Registerer
	// errorLog takes net/http's own complaints (a malformed request, a
	// proxy error already answered and logged) at debug level.
	errorLog *stdlog.Logger

	// HTTP/2: net/http's server, fed the connections the loop hands over
	// (h2.go), and its transport to the app, HTTP/2 without TLS.
	srv   *http.Server
	ln    *handoff
	h2c   *http.Transport
	table atomic.Pointer[table]

	// loops are the event loops serving HTTP on the loop's path, and each
	// one's state (*loop.Loop -> *loopState); upstreamIdle bounds the idle
	// life of their pooled connections to the app.
	loops        sync.Map
	upstreamIdle time.Duration
}

// Options are what a Server shares with the rest of the agent.
type Options struct {
	// Direction labels the exchanges: inbound (the default) or outbound.
	Direction string
	// Access receives the access log lines, one Write each (the agent gives
	// it its log sink).
	Access io.Writer // nil: discarded
	// Shared is what the decorations keep across reloads and share across
	// the agent's servers: the HTTP metrics (registered on the registry
	// given to New, once), the profiler, the admin page's tap, the OTLP
	// exporter, rate limits' buckets and breakers' counts (decor.Shared).
	// Nil: the server's own.
	Shared *decor.Shared
	// HeaderTimeout bounds the wait for a request's head (slowloris); 0
	// means 10s. BodyIdle bounds each wait for more of a request's body; 0
	// means 30s.
	HeaderTimeout, BodyIdle time.Duration
	// UpstreamIdle is how long a pooled keep-alive connection to the app
	// may idle before it is closed; 0 means 90s.
	UpstreamIdle time.Duration
}

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
	if o.Shared == nil {
		o.Shared = decor.NewShared()
	}
	if o.Access == nil {
		o.Access = io.Discard
	}
	s := &Server{log: log, access: o.Access, shared: o.Shared, reg: reg, ln: newHandoff(), direction: o.Direction, bodyIdle: o.BodyIdle,
		headerTimeout: o.HeaderTimeout, upstreamIdle: o.UpstreamIdle, errorLog: stdlog.New(debugWriter{log}, "", 0)}
	h2 := new(http.Protocols)
	h2.SetUnencryptedHTTP2(true)
	// DisableCompression: a transparent hop adds no Accept-Encoding the
	// client did not send, and decompresses nothing.
	s.h2c = &http.Transport{DialContext: s.dial, Protocols: h2, DisableCompression: true, IdleConnTimeout: o.UpstreamIdle}
	s.srv = &http.Server{
		Handler:           s,
		Protocols:         h2, // HTTP/1 is the loop's alone
		ReadHeaderTimeout: o.HeaderTimeout,
		MaxHeaderBytes:    http1.DefaultLimits.Head,
		ConnContext:       connContext,
		ConnState:         connState,
		ErrorLog:          s.errorLog,
	}
	return s, nil
}

// Apply builds the chains for cfg and swaps them in: requests already under
// way finish on the chains they started with.
func (s *Server) Apply(cfg *config.Config) error {
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
		// those net/http serves (HTTP/2) keep the first. Writing it on
		// every reload was a data race with Serve.
		s.srv.IdleTimeout = idle
	}
	s.idle.Store(int64(idle))
	s.table.Store(t)
	return nil
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
	defer s.h2c.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.live.Range(func(k, _ any) bool {
			if hc := k.(*h2conn); hc.state.Load() == int32(http.StateIdle) {
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
			s.live.Range(func(k, _ any) bool { k.(*h2conn).Close(); return true })
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
