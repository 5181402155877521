package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/otlp"
	"github.com/veneermesh/veneer/pkg/datapath/httpproxy"
	"github.com/veneermesh/veneer/pkg/datapath/listen"
	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/datapath/tproxy"
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// side is one direction's listeners (one per loop), proxy and HTTP server.
type side struct {
	dir   string
	lns   []*net.TCPListener
	proxy *proxy.Server
	http  *httpproxy.Server
}

// sideEnv is what both sides are built on.
type sideEnv struct {
	loops      []*loop.Loop
	tcpMetrics *proxy.Metrics
	shared     *decor.Shared // the decorations' (decor.Shared): the HTTP metrics, the tap, the exporter
	access     io.Writer
	identity   *identity.Source // nil: no mTLS
	reg        prometheus.Registerer
	log        zerolog.Logger
}

// startLoops starts n event loops, one per worker, shared by both
// directions; each has a listener of its own on every port (SO_REUSEPORT).
// A loop that stops sends what it returned on the channel.
func startLoops(n int) ([]*loop.Loop, <-chan error, error) {
	loops := make([]*loop.Loop, n)
	for i := range loops {
		l, err := loop.New()
		if err != nil {
			stopLoops(loops[:i])
			return nil, nil, err
		}
		loops[i] = l
	}
	stopped := make(chan error, len(loops))
	for _, l := range loops {
		go func() { stopped <- l.Run() }()
	}
	return loops, stopped, nil
}

func stopLoops(loops []*loop.Loop) {
	for _, l := range loops {
		l.Stop()
	}
}

// openSides opens one side per direction: inbound, where iptables'
// redirect (or TPROXY) sends connections, then outbound, for the app's own
// connections, unless --outbound-listen is empty.
func openSides(ctx context.Context, o Options, env sideEnv) ([]*side, error) {
	var sides []*side
	for _, dir := range []string{"inbound", "outbound"} {
		addr := o.Listen
		if dir == "outbound" {
			if addr = o.OutboundListen; addr == "" {
				continue
			}
		}
		sd, err := newSide(ctx, dir, addr, o, env)
		if err != nil {
			closeSides(sides)
			return nil, err
		}
		sides = append(sides, sd)
	}
	return sides, nil
}

// newSide builds dir's HTTP server and proxy, with a listener on addr for
// every loop.
func newSide(ctx context.Context, dir, addr string, o Options, env sideEnv) (*side, error) {
	flag := "--listen"
	if dir == "outbound" {
		flag = "--outbound-listen"
	}
	hs, err := httpproxy.New(env.log, httpproxy.Options{Direction: dir, Access: env.access, Shared: env.shared,
		HeaderTimeout: o.HeaderTimeout, BodyIdle: o.BodyIdle, UpstreamIdle: o.UpstreamIdle}, env.reg)
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{ConnectTimeout: o.ConnectTimeout, HTTP: hs, Direction: dir, Metrics: env.tcpMetrics,
		MaxConnections: o.MaxConnections, Loops: env.loops, Identity: env.identity}
	var extra func(string, syscall.RawConn) error
	if dir == "inbound" && o.Mode == "tproxy" {
		extra, pc.OriginalDst, pc.Mark = tproxy.Transparent, tproxy.LocalDst, o.Mark
	}
	sd := &side{dir: dir, http: hs}
	if sd.lns, err = listenPerLoop(ctx, addr, len(env.loops), extra); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if dir == "outbound" {
		// Probes come in through the inbound chain only.
		pc.IsProbe = func(netip.AddrPort) bool { return false }
	}
	if sd.proxy, err = proxy.New(pc, env.log, env.reg); err != nil {
		sd.close()
		return nil, err
	}
	return sd, nil
}

// listenPerLoop opens n listeners on one port, one for each loop; if one
// fails, it closes those it opened.
func listenPerLoop(ctx context.Context, addr string, n int, extra func(string, syscall.RawConn) error) ([]*net.TCPListener, error) {
	var lns []*net.TCPListener
	for range n {
		ln, err := listen.Listen(ctx, addr, extra)
		if err != nil {
			closeListeners(lns)
			return nil, err
		}
		lns = append(lns, ln.(*net.TCPListener))
		// The other loops' listeners share the first one's port, also
		// when addr let the kernel choose it.
		addr = ln.Addr().String()
	}
	return lns, nil
}

// close closes the side's listeners, for a Run that fails before serving.
func (sd *side) close() { closeListeners(sd.lns) }

func closeSides(sides []*side) {
	for _, sd := range sides {
		sd.close()
	}
}

func closeListeners(lns []*net.TCPListener) {
	for _, l := range lns {
		l.Close()
	}
}

// startSpans starts the OTLP exporter when --otlp-endpoint names one; nil
// without.
func startSpans(o Options, reg prometheus.Registerer, log zerolog.Logger) (*otlp.Exporter, error) {
	if o.OTLPEndpoint == "" {
		return nil, nil
	}
	e, err := otlp.New(otlp.Options{Endpoint: o.OTLPEndpoint, Sampling: o.TraceSampling, Service: o.ServiceName,
		Attributes: o.TraceResource}, reg, log)
	if err != nil {
		return nil, err
	}
	log.Info().Str("otlp_endpoint", o.OTLPEndpoint).Float64("sampling", o.TraceSampling).Str("service", o.ServiceName).
		Msg("sending a span per sampled request of the routes with tracing: true")
	return e, nil
}
