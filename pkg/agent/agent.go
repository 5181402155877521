// Package agent is veneer-agent: it wires the proxy listener, the admin
// endpoint and the drain on shutdown together.
//
//	opts, err := agent.ParseFlags(os.Args[1:], os.Stderr)
//	err = agent.Run(ctx, opts, sighup, logger) // returns after ctx is done and the drain ends
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/accesslog"
	"github.com/veneermesh/veneer/pkg/admin"
	"github.com/veneermesh/veneer/pkg/authz"
	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/envflag"
	"github.com/veneermesh/veneer/pkg/httpproxy"
	"github.com/veneermesh/veneer/pkg/listen"
	"github.com/veneermesh/veneer/pkg/loop"
	"github.com/veneermesh/veneer/pkg/loophole"
	"github.com/veneermesh/veneer/pkg/metrics"
	"github.com/veneermesh/veneer/pkg/proxy"
	"github.com/veneermesh/veneer/pkg/tproxy"
	"github.com/veneermesh/veneer/pkg/watch"
)

// Options is veneer-agent's configuration.
type Options struct {
	Listen         string        // inbound proxy listener, where iptables redirects
	Admin          string        // admin endpoint: /metrics, /ready, /healthz
	DrainTimeout   time.Duration // how long open connections may finish after SIGTERM
	ConnectTimeout time.Duration // how long to wait for the app to accept
	LogLevel       zerolog.Level
	Config         string    // the YAML config file; "" means the defaults
	AccessLog      io.Writer // where access log lines go
	OutboundListen string    // outbound listener, where the app's captured connections go; "" for none
	Mode           string    // redirect or tproxy: as veneer-init's --mode
	Mark           uint32    // tproxy mode: the mark of connections to the app, as veneer-init's
	MaxConnections int       // per listener; past it, new connections are reset
	HeaderTimeout  time.Duration
	BodyIdle       time.Duration
	DrainQuiet     time.Duration // during a drain, stop accepting once no connection came for this long
	UpstreamIdle   time.Duration // how long a pooled connection to the app may idle
	AdminLocal     string        // the state-changing admin endpoints, on a loopback address; "" for none
	// Workers is how many cores the agent runs on at once (the command sets
	// GOMAXPROCS to it); 0: as many as the container may use.
	Workers int
}

// ParseFlags reads the agent's flags, each also settable as $VENEER_<FLAG>.
func ParseFlags(args []string, out io.Writer) (Options, error) {
	fs := flag.NewFlagSet("veneer-agent", flag.ContinueOnError)
	fs.SetOutput(out)
	o := Options{AccessLog: os.Stdout}
	fs.StringVar(&o.Config, "config", "", "YAML config file (reloaded when it changes and on SIGHUP); empty: the defaults")
	fs.StringVar(&o.Listen, "listen", ":15006", "address of the inbound listener that captured connections are redirected to")
	fs.StringVar(&o.Admin, "admin", ":15000", "address of the admin endpoint (/metrics, /ready, /healthz, /config, /stats)")
	fs.StringVar(&o.OutboundListen, "outbound-listen", ":15001", "address of the outbound listener (veneer-init --outbound); empty for none")
	fs.StringVar(&o.Mode, "mode", "redirect", "redirect or tproxy, as veneer-init's --mode (tproxy needs CAP_NET_ADMIN)")
	mark := fs.String("mark", "0x539", "tproxy mode: the mark of the agent's connections to the app, as veneer-init's")
	fs.IntVar(&o.MaxConnections, "max-connections", 20000, "connections open at once per listener; past it, new ones are reset (0: no bound)")
	fs.DurationVar(&o.HeaderTimeout, "header-timeout", 10*time.Second, "how long a client may take to send a request's head (slowloris)")
	fs.DurationVar(&o.BodyIdle, "body-idle-timeout", 30*time.Second, "how long a client may pause while sending a request body")
	fs.DurationVar(&o.UpstreamIdle, "upstream-idle-timeout", 90*time.Second, "how long a pooled keep-alive connection to the app may idle")
	fs.StringVar(&o.AdminLocal, "admin-local", "127.0.0.1:15009", "loopback address of the endpoints that change state (POST /drain, PUT /log-level); empty for none")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "after SIGTERM: how long the agent may drain; it accepts new connections for up to half of it, then lets open ones finish, then closes what is left")
	fs.DurationVar(&o.DrainQuiet, "drain-quiet", time.Second, "after SIGTERM: stop accepting once no new connection came for this long")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 5*time.Second, "how long to wait for the app to accept a connection")
	fs.IntVar(&o.Workers, "workers", 1, "cores the agent runs on at once (GOMAXPROCS); 0: as many as the container may use (its CPU limit, else the node's cores). One, as Linkerd's proxy: a sidecar should not compete with its app, and one core costs less CPU per request")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "veneer-agent forwards the connections veneer-init redirected to it, and decorates them.\n"+
			"Every flag can also be set as $VENEER_NAME, e.g. --drain-timeout as $VENEER_DRAIN_TIMEOUT.\n\n")
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, "VENEER_", args); err != nil {
		return Options{}, err
	}
	for name, addr := range map[string]string{"--listen": o.Listen, "--admin": o.Admin, "--outbound-listen": o.OutboundListen} {
		if addr == "" && name == "--outbound-listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Options{}, fmt.Errorf("%s: %q is not a host:port address (e.g. :15006)", name, addr)
		}
	}
	if o.DrainQuiet <= 0 {
		return Options{}, fmt.Errorf("--drain-quiet: %s is not a positive duration", o.DrainQuiet)
	}
	if o.DrainTimeout < 0 {
		return Options{}, fmt.Errorf("--drain-timeout: %s is negative", o.DrainTimeout)
	}
	if o.ConnectTimeout <= 0 {
		return Options{}, fmt.Errorf("--connect-timeout: %s is not a positive duration", o.ConnectTimeout)
	}
	if o.AdminLocal != "" {
		host, _, err := net.SplitHostPort(o.AdminLocal)
		if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.IsLoopback() {
			return Options{}, fmt.Errorf("--admin-local: %q is not a loopback address and port (e.g. 127.0.0.1:15009): it changes the agent's state", o.AdminLocal)
		}
	}
	if o.Workers < 0 {
		return Options{}, fmt.Errorf("--workers: %d is negative (0: as many as the container may use)", o.Workers)
	}
	if o.MaxConnections < 0 {
		return Options{}, fmt.Errorf("--max-connections: %d is negative", o.MaxConnections)
	}
	if o.HeaderTimeout <= 0 || o.BodyIdle <= 0 || o.UpstreamIdle <= 0 {
		return Options{}, fmt.Errorf("--header-timeout, --body-idle-timeout and --upstream-idle-timeout: %s, %s and %s must all be positive",
			o.HeaderTimeout, o.BodyIdle, o.UpstreamIdle)
	}
	if o.Mode != "redirect" && o.Mode != "tproxy" {
		return Options{}, fmt.Errorf("--mode: %q is not a mode (redirect or tproxy)", o.Mode)
	}
	m, err := strconv.ParseUint(*mark, 0, 32)
	if err != nil || m == 0 {
		return Options{}, fmt.Errorf("--mark: %q is not a packet mark (e.g. 0x539)", *mark)
	}
	o.Mark = uint32(m)
	if o.LogLevel, err = zerolog.ParseLevel(*level); err != nil || *level == "" {
		return Options{}, fmt.Errorf("--log-level: %q is not a level (debug, info, warn or error)", *level)
	}
	return o, nil
}

// Run serves until ctx is done, then drains: /ready turns 503, the listener
// closes, and open connections get DrainTimeout to finish before they are
// closed. A drain that had to close connections is still a clean exit.
// The config file, if any, is reloaded when it changes and on reload (a
// SIGHUP, from the command); an invalid new file is refused with a log line
// and the running config stays.
func Run(ctx context.Context, o Options, reload <-chan struct{}, log zerolog.Logger) error {
	ctx, drainNow := context.WithCancel(ctx) // SIGTERM, or POST /drain on --admin-local
	defer drainNow()
	var level atomic.Int32
	level.Store(int32(o.LogLevel))
	log = log.Hook(levelFilter{&level})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cfg := config.Default()
	if o.Config != "" {
		c, err := config.Load(o.Config)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// An optional ConfigMap not created (yet): the defaults, until
			// the file appears.
			log.Warn().Str("config", o.Config).Msg("no config file; running with the defaults until it appears")
		case err != nil:
			return fmt.Errorf("--config: %w", err)
		default:
			cfg = c
		}
	}
	tcpMetrics, err := proxy.NewMetrics(reg)
	if err != nil {
		return err
	}
	httpMetrics, err := metrics.New(reg)
	if err != nil {
		return err
	}
	// Written out within a second, not a write(2) per request; what is held
	// is written when Run returns.
	accessOut := accesslog.NewBuffered(o.AccessLog, time.Second)
	defer accessOut.Close()
	access := zerolog.New(accessOut)

	// One event loop per worker, shared by both directions; each has a
	// listener of its own on every port (SO_REUSEPORT).
	loops := make([]*loop.Loop, runtime.GOMAXPROCS(0))
	for i := range loops {
		if loops[i], err = loop.New(); err != nil {
			for _, l := range loops[:i] {
				l.Stop()
			}
			return err
		}
	}
	loopErr := make(chan error, len(loops))
	for _, l := range loops {
		go func() { loopErr <- l.Run() }()
	}
	defer func() {
		for _, l := range loops {
			l.Stop()
		}
	}()

	// One listener per direction and loop: inbound from iptables' redirect
	// (or TPROXY), outbound from the app's own connections.
	var sides []*side
	for _, dir := range []string{"inbound", "outbound"} {
		addr := o.Listen
		if dir == "outbound" {
			if addr = o.OutboundListen; addr == "" {
				continue
			}
		}
		sd, err := newSide(ctx, dir, addr, o, loops, tcpMetrics, httpMetrics, access, reg, log)
		if err != nil {
			for _, prev := range sides {
				prev.close()
			}
			return err
		}
		sides = append(sides, sd)
	}

	var active atomic.Pointer[config.Config]
	apply := func(c *config.Config) error {
		for _, sd := range sides {
			if err := sd.http.Apply(c); err != nil {
				return err
			}
		}
		for _, sd := range sides {
			sd.proxy.SetPolicies(policies(c, sd.dir))
		}
		active.Store(c)
		return nil
	}
	if err := apply(cfg); err != nil {
		return fmt.Errorf("--config: %w", err)
	}

	aln, err := listen.Listen(ctx, o.Admin, nil)
	if err != nil {
		for _, sd := range sides {
			sd.close()
		}
		return fmt.Errorf("--admin: %w", err)
	}
	a := admin.New(reg)
	a.Handle("GET /stats", sides[0].http.Stats())
	a.Handle("GET /config", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(active.Load())
	}))
	adminSrv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	var localSrv *http.Server
	if o.AdminLocal != "" {
		lln, err := listen.Listen(ctx, o.AdminLocal, nil)
		if err != nil {
			aln.Close()
			for _, sd := range sides {
				sd.close()
			}
			return fmt.Errorf("--admin-local: %w", err)
		}
		localSrv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: admin.Local(
			func() { log.Info().Msg("drain asked for on --admin-local"); drainNow() },
			func(s string) error {
				l, err := zerolog.ParseLevel(s)
				if err != nil || s == "" {
					return fmt.Errorf("level: %q is not a level (debug, info, warn or error)", s)
				}
				level.Store(int32(l))
				return nil
			})}
		go localSrv.Serve(lln)
		defer localSrv.Close()
	}
	uidProcs := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "veneer_proxy_uid_processes",
		Help: "Other processes of the pod running as the agent's UID: they bypass outbound capture (0 where the agent cannot see the pod's processes).",
	})
	reg.MustRegister(uidProcs)
	go watchLoopholes(ctx, uidProcs, log)

	errc := make(chan error, 2*len(sides)+1)
	for _, sd := range sides {
		go func() { errc <- sd.proxy.Serve(sd.lns...) }()
		go func() { errc <- sd.http.Serve() }()
	}
	go func() { errc <- adminSrv.Serve(aln) }()
	a.SetReady(true)
	ev := log.Info().Str("mode", o.Mode).Str("listen", sides[0].lns[0].Addr().String()).Str("admin", aln.Addr().String()).Str("config", o.Config).
		Int("workers", runtime.GOMAXPROCS(0))
	if len(sides) > 1 {
		ev = ev.Str("outbound_listen", sides[1].lns[0].Addr().String())
	}
	ev.Msg("veneer-agent ready")

	changed := make(chan struct{}, 1)
	if o.Config != "" {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go watch.File(wctx, o.Config, time.Second, func() { changed <- struct{}{} })
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-errc:
			break loop
		case runErr = <-loopErr:
			break loop
		case <-reload:
			reloadConfig(o.Config, apply, log)
		case <-changed:
			reloadConfig(o.Config, apply, log)
		}
	}
	a.SetReady(false)
	log.Info().Dur("drain_timeout", o.DrainTimeout).Msg("draining")
	dctx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	// A terminating pod still gets new connections until every node has
	// noticed it left the Service's endpoints: keep accepting them (with
	// "Connection: close", so clients move on) until none came for DrainQuiet
	// (or half the drain timeout passed), then stop accepting and let the
	// open ones finish.
	for _, sd := range sides {
		sd.http.StartDrain()
	}
	// The first half of the drain timeout at most: the rest is for the
	// requests still in flight once accepting stops.
	acceptUntil := time.Now().Add(o.DrainTimeout / 2)
	if runErr == nil {
		for quiet := false; !quiet && time.Now().Before(acceptUntil); {
			quiet = true
			for _, sd := range sides {
				quiet = quiet && sd.proxy.QuietFor(o.DrainQuiet)
			}
			if !quiet {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Stop accepting, and let what was accepted reach the HTTP server
	// before it stops taking connections.
	for _, sd := range sides {
		sd.proxy.StopAccepting()
	}
	var drained sync.WaitGroup
	var timedOut atomic.Bool
	for _, sd := range sides {
		for _, shut := range []func(context.Context) error{sd.proxy.Shutdown, sd.http.Shutdown} {
			drained.Add(1)
			go func() {
				defer drained.Done()
				if shut(dctx) != nil {
					timedOut.Store(true)
				}
			}()
		}
	}
	drained.Wait()
	if timedOut.Load() {
		log.Warn().Msg("drain timed out; closed the connections still open")
	}
	adminSrv.Close()
	if runErr != nil && !errors.Is(runErr, proxy.ErrServerClosed) && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	log.Info().Msg("stopped")
	return nil
}

// levelFilter drops events below the level set at run time.
type levelFilter struct{ level *atomic.Int32 }

func (f levelFilter) Run(e *zerolog.Event, l zerolog.Level, _ string) {
	if l < zerolog.Level(f.level.Load()) {
		e.Discard()
	}
}

// watchLoopholes warns, at start and every 30s, about other processes of the
// pod running as the agent's UID: outbound capture cannot see them.
func watchLoopholes(ctx context.Context, g prometheus.Gauge, log zerolog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		procs := loophole.Scan("/proc")
		g.Set(float64(len(procs)))
		for _, p := range procs {
			log.Warn().Int("pid", p.PID).Str("process", p.Name).
				Msg("another process of the pod runs as the agent's UID: its outgoing connections bypass capture")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// side is one direction's listeners (one per loop), proxy and HTTP server.
type side struct {
	dir   string
	lns   []*net.TCPListener
	proxy *proxy.Server
	http  *httpproxy.Server
}

func (sd *side) close() {
	for _, l := range sd.lns {
		l.Close()
	}
}

func newSide(ctx context.Context, dir, addr string, o Options, loops []*loop.Loop, tm *proxy.Metrics, hm *metrics.Metrics,
	access zerolog.Logger, reg prometheus.Registerer, log zerolog.Logger) (*side, error) {
	flag := "--listen"
	if dir == "outbound" {
		flag = "--outbound-listen"
	}
	hs, err := httpproxy.New(log, httpproxy.Options{Direction: dir, Access: access, Metrics: hm,
		HeaderTimeout: o.HeaderTimeout, BodyIdle: o.BodyIdle, UpstreamIdle: o.UpstreamIdle}, reg)
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{ConnectTimeout: o.ConnectTimeout, HTTP: hs, Direction: dir, Metrics: tm, MaxConnections: o.MaxConnections, Loops: loops}
	var extra func(string, syscall.RawConn) error
	if dir == "inbound" && o.Mode == "tproxy" {
		extra, pc.OriginalDst, pc.Mark = tproxy.Transparent, tproxy.LocalDst, o.Mark
	}
	sd := &side{dir: dir, http: hs}
	for range loops {
		ln, err := listen.Listen(ctx, addr, extra)
		if err != nil {
			sd.close()
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		sd.lns = append(sd.lns, ln.(*net.TCPListener))
		// The other loops' listeners share the first one's port, also
		// when addr let the kernel choose it.
		addr = ln.Addr().String()
	}
	if dir == "outbound" {
		// Probes come in through the inbound chain only.
		pc.IsProbe = func(netip.AddrPort) bool { return false }
	}
	if sd.proxy, err = proxy.New(pc, log, reg); err != nil {
		sd.close()
		return nil, err
	}
	return sd, nil
}

// reloadConfig loads the file again and applies it, or keeps the running
// config and says why.
func reloadConfig(path string, apply func(*config.Config) error, log zerolog.Logger) {
	if path == "" {
		log.Info().Msg("reload asked for, but there is no --config file")
		return
	}
	c, err := config.Load(path)
	if err == nil {
		err = apply(c)
	}
	if err != nil {
		log.Error().Err(err).Msg("config reload refused; the running config stays")
		return
	}
	log.Info().Str("config", path).Msg("config reloaded")
}

// policies are the proxy's per-port decisions from cfg, for one direction:
// outbound has one section for every destination.
func policies(cfg *config.Config, dir string) *proxy.Policies {
	policy := func(pc config.Port) *proxy.Policy {
		pol := &proxy.Policy{Protocol: pc.Protocol, SniffTimeout: pc.SniffTimeout.D(), IdleTimeout: pc.TCP.IdleTimeout.D()}
		if pc.TCP.Authz != nil {
			pol.Authz = authz.New(*pc.TCP.Authz)
		}
		switch pc.ProxyProtocol {
		case "v1":
			pol.ProxyProtocol = 1
		case "v2":
			pol.ProxyProtocol = 2
		}
		return pol
	}
	if dir == "outbound" {
		return &proxy.Policies{Default: policy(cfg.Outbound)}
	}
	ps := &proxy.Policies{Ports: map[uint16]*proxy.Policy{}, Default: policy(cfg.Default)}
	for _, port := range cfg.PortNumbers() {
		ps.Ports[port] = policy(cfg.Port(port))
	}
	return ps
}
