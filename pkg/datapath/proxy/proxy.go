// Package proxy is the agent's data path: it accepts the connections iptables
// redirected to it, recovers where each was going, and forwards it there,
// on event loops of its own (pkg/datapath/loop).
//
//	p, err := proxy.New(proxy.Config{Loops: loops}, log, registry)
//	go p.Serve(listeners...) // one listener per loop, SO_REUSEPORT
//	...
//	p.Shutdown(ctx) // stop accepting, let open connections finish until ctx ends
//
// Every accepted connection goes through the steps listed in steps_linux.go, in
// order, on the loop that accepted it: what it is refused for, where it was
// going, how its protocol is decided, and how its bytes are forwarded or it
// is handed to the HTTP server. Bytes are copied through buffers, and a
// bulk transfer spliced through pipes, each held only while bytes are in
// flight, so idle connections cost neither.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/origdst"
	"github.com/veneermesh/veneer/pkg/intercept/probe"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
	"github.com/veneermesh/veneer/pkg/mesh/mtls"
)

// Config is the proxy's configuration.
type Config struct {
	// ConnectTimeout bounds the connection to the app. Zero means 5s.
	ConnectTimeout time.Duration
	// OriginalDst recovers where an accepted socket was going, from the
	// socket, whether it is IPv6, and the listener's port. Nil means
	// origdst.FD (SO_ORIGINAL_DST); tproxy mode passes tproxy.LocalDst;
	// tests of one piece may set a fake.
	OriginalDst func(fd int, ipv6 bool, listenPort uint16) (netip.AddrPort, error)
	// IsProbe tells veneer-init's validation probes from traffic. Nil means
	// probe.Is; tests of one piece, whose apps listen on loopback, override it.
	IsProbe func(netip.AddrPort) bool
	// HTTP serves the connections that carry HTTP. Nil: every connection
	// is forwarded as TCP.
	HTTP HTTPServer
	// Mark, when not zero, is tproxy mode: connections to the app come from
	// the client's own address, with this mark so that the replies are
	// routed back, and are never shared between clients.
	Mark uint32
	// MaxConnections bounds the connections open at once (HTTP ones
	// included); past it, new ones are reset. 0: no bound.
	MaxConnections int
	// Direction labels the metrics and logs: "inbound" (the default) or
	// "outbound".
	Direction string
	// Metrics are shared by every listener of the agent; nil: registered
	// anew on the registry given to New.
	Metrics *Metrics
	// Loops run the connections: Serve's i-th listener goes to loop i
	// (modulo their number). They are the caller's to run and stop. Nil:
	// one loop of the server's own, run by New and stopped by Shutdown.
	Loops []*loop.Loop
	// Identity is the agent's SVID, for mTLS (mesh_linux.go): ports with
	// an mTLS mode and meshed peers need it. Nil: no mTLS.
	Identity *identity.Source
}

// Server forwards redirected connections to their original destination.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	metrics *Metrics
	http    HTTPServer
	ownLoop bool

	policies   atomic.Pointer[Policies]
	open       atomic.Int64       // connections accepted and not yet closed, HTTP ones too
	onLoop     atomic.Int64       // connections a loop holds: not closed, not handed off
	starting   atomic.Int64       // connections not yet forwarding or handed to the HTTP server
	rejected   prometheus.Counter // past MaxConnections, resolved once
	lastAccept atomic.Int64       // when a connection was last accepted, Unix nanoseconds

	serverTLS *tls.Config            // nil without an identity
	sessions  tls.ClientSessionCache // resumed sessions to meshed peers

	mu         sync.Mutex
	listeners  []*listener
	closing    bool
	shutdownCh chan struct{}
}

// New validates cfg and registers the proxy's metrics on reg. It starts
// nothing but, without cfg.Loops, a loop of its own.
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.ConnectTimeout < 0 {
		return nil, fmt.Errorf("connect timeout: %s is negative", cfg.ConnectTimeout)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.OriginalDst == nil {
		cfg.OriginalDst = origdst.FD
	}
	if cfg.IsProbe == nil {
		cfg.IsProbe = probe.Is
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
	own := false
	if len(cfg.Loops) == 0 {
		l, err := loop.New()
		if err != nil {
			return nil, err
		}
		go l.Run()
		cfg.Loops, own = []*loop.Loop{l}, true
	}
	s := &Server{
		cfg:        cfg,
		log:        log.With().Str("direction", cfg.Direction).Logger(),
		metrics:    m,
		http:       cfg.HTTP,
		ownLoop:    own,
		shutdownCh: make(chan struct{}),
		rejected:   m.rejected.WithLabelValues(cfg.Direction),
	}
	if cfg.Identity != nil {
		s.serverTLS = mtls.Server(cfg.Identity)
		s.sessions = tls.NewLRUClientSessionCache(1024)
	}
	s.policies.Store(defaultPolicies)
	return s, nil
}

// clientTLS is the configuration to reach a meshed peer whose ID is one
// of want; nil without an identity.
func (s *Server) clientTLS(want []identity.Pattern) *tls.Config {
	if s.cfg.Identity == nil {
		return nil
	}
	return mtls.Client(s.cfg.Identity, want, s.sessions)
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on ls, the i-th on the i-th loop, until
// Shutdown; it then returns ErrServerClosed. The loops take the listeners'
// sockets over: ls are closed.
func (s *Server) Serve(ls ...*net.TCPListener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		for _, l := range ls {
			l.Close()
		}
		return ErrServerClosed
	}
	for i, l := range ls {
		ln, err := newListener(s, s.cfg.Loops[i%len(s.cfg.Loops)], l)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("accepting: %w", err)
		}
		s.listeners = append(s.listeners, ln)
	}
	s.mu.Unlock()
	<-s.shutdownCh
	return ErrServerClosed
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
	var closed sync.WaitGroup
	if !s.closing {
		s.closing = true
		close(s.shutdownCh)
		for _, ln := range s.listeners {
			closed.Add(1)
			if !ln.l.Post(func() { ln.close(); closed.Done() }) {
				closed.Done() // a stopped loop accepts nothing
			}
		}
	}
	s.mu.Unlock()
	closed.Wait()
	waitZero(context.Background(), &s.starting)
}

// Shutdown stops accepting at once, then waits for open connections to end
// until ctx is done, when it closes those left. It returns ctx's error when it
// had to close connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	defer func() {
		if s.ownLoop {
			s.cfg.Loops[0].Stop()
		}
	}()
	if waitZero(ctx, &s.onLoop) {
		return nil
	}
	for _, l := range s.cfg.Loops {
		l.Post(func() {
			l.Each(func(h loop.Handler) {
				if c, ok := h.(*conn); ok && c.s == s {
					c.finish(endDrained, false)
				}
			})
		})
	}
	waitZero(context.Background(), &s.onLoop)
	return ctx.Err()
}

// waitZero waits until n is zero or ctx is done, and says which came. The
// loops count without a lock shared with this goroutine, so it looks often.
func waitZero(ctx context.Context, n *atomic.Int64) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for n.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
