// Package proxy is the agent's data path: it accepts the connections iptables
// redirected to it, recovers where each was going, and forwards it there.
//
//	p, err := proxy.New(proxy.Config{ConnectTimeout: 5 * time.Second}, log, registry)
//	go p.Serve(listener)
//	...
//	p.Shutdown(ctx) // stop accepting, let open connections finish until ctx ends
//
// Bytes are copied through pooled buffers, and a bulk transfer spliced
// through pooled pipes (see copy.go for when and why), each held only while
// bytes are in flight, so idle connections cost no buffer.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/origdst"
	"github.com/veneermesh/veneer/pkg/probe"
)

// Config is the proxy's configuration.
type Config struct {
	// ConnectTimeout bounds the connection to the app. Zero means 5s.
	ConnectTimeout time.Duration
	// OriginalDst recovers a connection's original destination. Nil means
	// origdst.Get; tests of one piece may set a fake.
	OriginalDst func(*net.TCPConn) (netip.AddrPort, error)
	// IsProbe tells veneer-init's validation probes from traffic. Nil means
	// probe.Is; tests of one piece, whose apps listen on loopback, override it.
	IsProbe func(netip.AddrPort) bool
	// HTTP serves the connections that carry HTTP. Nil: every connection
	// is forwarded as TCP.
	HTTP HTTPServer
	// Dial connects to the app for a client. Nil means a plain connection
	// to dst; tproxy mode connects from the client's address. Dial must
	// honour ctx's deadline.
	Dial func(ctx context.Context, client, dst netip.AddrPort) (net.Conn, error)
	// MaxConnections bounds the connections open at once (HTTP ones
	// included); past it, new ones are reset. 0: no bound.
	MaxConnections int
	// Direction labels the metrics and logs: "inbound" (the default) or
	// "outbound".
	Direction string
	// Metrics are shared by every listener of the agent; nil: registered
	// anew on the registry given to New.
	Metrics *Metrics
	// OwnConns, when set, gives every client connection its own
	// connections to the app (tproxy mode): they carry the client's
	// address and must not be pooled across clients.
	OwnConns bool
}

// Server forwards redirected connections to their original destination.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	metrics *Metrics
	http    HTTPServer

	policies   atomic.Pointer[Policies]
	open       atomic.Int64       // connections accepted and not yet closed
	rejected   prometheus.Counter // past MaxConnections, resolved once
	lastAccept atomic.Int64       // when a connection was last accepted, Unix nanoseconds

	mu        sync.Mutex
	listeners []net.Listener
	closing   bool

	conns tracker
	// starting counts connections not yet forwarding or handed to the HTTP
	// server: a drain lets them reach one or the other before the HTTP
	// server stops taking connections.
	starting tracker
	// kill ends every open connection when the drain runs out of time.
	kill       context.Context
	killNow    context.CancelFunc
	shutdownCh chan struct{}
}

// New validates cfg and registers the proxy's metrics on reg. It starts nothing.
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.ConnectTimeout < 0 {
		return nil, fmt.Errorf("connect timeout: %s is negative", cfg.ConnectTimeout)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.OriginalDst == nil {
		cfg.OriginalDst = origdst.Get
	}
	if cfg.IsProbe == nil {
		cfg.IsProbe = probe.Is
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = func(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", dst.String())
		}
	}
	if cfg.Direction == "" {
		cfg.Direction = "inbound"
	}
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(reg); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	kill, killNow := context.WithCancel(context.Background())
	s := &Server{
		cfg:        cfg,
		log:        log.With().Str("direction", cfg.Direction).Logger(),
		metrics:    m,
		kill:       kill,
		killNow:    killNow,
		shutdownCh: make(chan struct{}),
		http:       cfg.HTTP,
		rejected:   m.rejected.WithLabelValues(cfg.Direction),
	}
	s.policies.Store(defaultPolicies)
	return s, nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on l until Shutdown. It returns ErrServerClosed
// after Shutdown, or the error that stopped accepting.
func (s *Server) Serve(l *net.TCPListener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()

	var backoff time.Duration
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			select {
			case <-s.shutdownCh:
				return ErrServerClosed
			default:
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than die with connections open.
			if ne, ok := err.(net.Error); ok && !errors.Is(err, net.ErrClosed) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(ne).Dur("retry_in", backoff).Msg("accept failed")
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting: %w", err)
		}
		backoff = 0
		s.lastAccept.Store(time.Now().UnixNano())
		// Over the limit: refused at once, so that a flood costs the agent
		// no goroutine and no memory.
		if n := s.open.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
			s.open.Add(-1)
			reset(c)
			s.rejected.Inc()
			continue
		}
		s.conns.Add()
		s.starting.Add()
		go s.handle(c)
	}
}

// QuietFor reports whether no connection has been accepted for d.
func (s *Server) QuietFor(d time.Duration) bool {
	return time.Since(time.Unix(0, s.lastAccept.Load())) >= d
}

// StopAccepting closes the listeners and waits until every connection
// already accepted is forwarding or has been handed to the HTTP server, so
// that the HTTP server can be shut down without dropping one.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.shutdownCh)
		for _, l := range s.listeners {
			l.Close()
		}
	}
	s.mu.Unlock()
	s.starting.Wait()
}

// Shutdown stops accepting at once, then waits for open connections to end
// until ctx is done, when it closes those left. It returns ctx's error when it
// had to close connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()

	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.killNow()
		<-done
		return ctx.Err()
	}
}
