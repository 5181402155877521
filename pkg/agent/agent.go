// Package agent is veneer-agent: it wires the proxy listeners, the admin
// endpoints, the config reload and the drain on shutdown together.
//
//	opts, err := agent.ParseFlags(os.Args[1:], os.Stderr)
//	err = agent.Run(ctx, opts, sighup, logger) // returns after ctx is done and the drain ends
//
// Run reads as the list of its steps, each in a file of its own: the event
// loops and each direction's listeners, proxy and HTTP server (side.go),
// the config they run with (config.go), the admin endpoints and the log
// level they set (admin.go), the watch for processes that capture misses
// (loophole.go), serving (serve.go) with reloads (reload.go), and the drain
// (drain.go).
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/logsink"
	"github.com/veneermesh/veneer/pkg/agent/otlp"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/decor/metrics"
	"github.com/veneermesh/veneer/pkg/decor/requestid"
	"github.com/veneermesh/veneer/pkg/decor/stats"
	"github.com/veneermesh/veneer/pkg/decor/tap"
	"github.com/veneermesh/veneer/pkg/envflag"
	"github.com/veneermesh/veneer/pkg/kube/appprobe"
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
	// Traces: where the spans of routes with tracing on go (an OTLP/HTTP
	// collector; "" for nowhere), the share of new traces recorded, and the
	// spans' service name and resource attributes.
	OTLPEndpoint  string
	TraceSampling float64
	ServiceName   string
	TraceResource map[string]string
	// mTLS: where the agent's SVID comes from (the Workload API's socket,
	// or csi-driver-spiffe's files; neither: no mTLS), and the mode of
	// the inbound ports whose config section sets none.
	SPIFFESocket string
	SVIDDir      string
	MTLS         string
	// AppProbes are the app's kubelet probes, by the paths inject gave
	// them on the admin port (Istio's probe rewrite).
	AppProbes map[string]appprobe.Probe
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
	fs.StringVar(&o.OTLPEndpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTLP/HTTP collector to send a span per sampled request to, for routes with tracing: true (e.g. http://otel-collector:4318); empty: none. Default: $OTEL_EXPORTER_OTLP_ENDPOINT")
	fs.Float64Var(&o.TraceSampling, "trace-sampling", 0.01, "share of the traces the agent starts that are recorded, 0 to 1 (Istio's default: 1%); a request with a traceparent is recorded as its sampled flag says")
	fs.StringVar(&o.ServiceName, "service-name", firstOf(os.Getenv("OTEL_SERVICE_NAME"), "veneer-agent"), "the spans' service.name (veneerctl inject sets the workload's app label). Default: $OTEL_SERVICE_NAME, else veneer-agent")
	fs.StringVar(&o.SPIFFESocket, "spiffe-socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "the SPIFFE Workload API (a SPIRE agent's socket, unix:///path) the agent takes its X.509 SVID and trust bundle from, for mTLS; /ready waits for the first SVID. Default: $SPIFFE_ENDPOINT_SOCKET")
	fs.StringVar(&o.SVIDDir, "svid-dir", "", "instead of --spiffe-socket: a directory with the SVID in cert-manager csi-driver-spiffe's files (tls.crt, tls.key, ca.crt), read again when they change")
	fs.StringVar(&o.MTLS, "mtls", "off", "the mTLS mode of inbound ports whose config sets none: off, permissive (mTLS from meshed peers, plaintext from the rest) or strict (meshed peers only); needs --spiffe-socket or --svid-dir")
	probes := fs.String("app-probes", "", "the app's kubelet probes, a JSON object by path (/app-health/<container>/<kind>), that the agent runs for the kubelet on its admin port: veneerctl inject moves them there so that they pass a strict mTLS port")
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
	switch {
	case o.MTLS != proxy.MTLSOff && o.MTLS != proxy.MTLSPermissive && o.MTLS != proxy.MTLSStrict:
		return Options{}, fmt.Errorf("--mtls: %q is not a mode (off, permissive or strict)", o.MTLS)
	case o.SPIFFESocket != "" && o.SVIDDir != "":
		return Options{}, fmt.Errorf("--spiffe-socket (%s) and --svid-dir (%s): one identity source, not both", o.SPIFFESocket, o.SVIDDir)
	case o.MTLS != proxy.MTLSOff && o.SPIFFESocket == "" && o.SVIDDir == "":
		return Options{}, fmt.Errorf("--mtls: %s needs an SVID: set --spiffe-socket ($SPIFFE_ENDPOINT_SOCKET) or --svid-dir", o.MTLS)
	}
	if *probes != "" {
		if o.AppProbes, err = appprobe.Parse(*probes); err != nil {
			return Options{}, fmt.Errorf("--app-probes: %w", err)
		}
	}
	if err := otlp.CheckSampling(o.TraceSampling); err != nil {
		return Options{}, fmt.Errorf("--trace-sampling: %w", err)
	}
	// The pod's own names, from the downward API (veneerctl inject sets them).
	o.TraceResource = map[string]string{}
	for attr, env := range map[string]string{"k8s.pod.name": "POD_NAME", "k8s.namespace.name": "POD_NAMESPACE"} {
		if v := os.Getenv(env); v != "" {
			o.TraceResource[attr] = v
		}
	}
	if o.LogLevel, err = zerolog.ParseLevel(*level); err != nil || *level == "" {
		return Options{}, fmt.Errorf("--log-level: %q is not a level (debug, info, warn or error)", *level)
	}
	return o, nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// accessLimit bounds the access log lines held while stdout is slow: at
// 20,000 requests a second, about half a second of them. Past it lines are
// dropped, counted and the count logged.
const accessLimit = 4 << 20

// Run serves until ctx is done, then drains: /ready turns 503, the listener
// closes, and open connections get DrainTimeout to finish before they are
// closed. A drain that had to close connections is still a clean exit.
// The config file, if any, is reloaded when it changes and on reload (a
// SIGHUP, from the command); an invalid new file is refused with a log line
// and the running config stays.
func Run(ctx context.Context, o Options, reload <-chan struct{}, log zerolog.Logger) error {
	ctx, drainNow := context.WithCancel(ctx) // SIGTERM, or POST /drain on --admin-local
	defer drainNow()
	level := newLogLevel(o.LogLevel)
	log = log.Hook(level)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cfg, err := loadConfig(o.Config, log)
	if err != nil {
		return err
	}
	tcpMetrics, err := proxy.NewMetrics(reg)
	if err != nil {
		return err
	}
	// What the decorations share across both sides and keep across
	// reloads: the HTTP metrics registered now (so /metrics lists them
	// before the first request), the profiler, the admin page's tap, the
	// OTLP exporter.
	shared := decor.NewShared()
	if _, err := metrics.Of(shared, reg); err != nil {
		return fmt.Errorf("registering HTTP metrics: %w", err)
	}
	profiler := stats.Of(shared, cfg.Stats.MaxPaths)
	// Written out off the loops, within a second or per 64 KiB, not a
	// write(2) per request; what is held is written when Run returns.
	accessOut := logsink.NewWith(o.AccessLog, logsink.Options{Gather: time.Second, Limit: accessLimit})
	defer accessOut.Close()
	loops, loopStopped, err := startLoops(runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	defer stopLoops(loops)
	requests := tap.New() // the admin page's live tap, of both sides
	tap.Provide(shared, requests)
	spans, err := startSpans(o, reg, log)
	if err != nil {
		return err
	}
	svid, err := startIdentity(ctx, o, reg, log)
	if err != nil {
		return err
	}
	if svid != nil {
		defer svid.Close()
	}
	env := sideEnv{loops: loops, tcpMetrics: tcpMetrics, shared: shared, access: accessOut, reg: reg, log: log, identity: svid}
	if spans != nil { // not a nil *Exporter in the interface
		defer spans.Close() // after the drain: what is queued is sent
		requestid.ProvideSpans(shared, spans)
	}
	sides, err := openSides(ctx, o, env)
	if err != nil {
		return err
	}
	running := &runningConfig{sides: sides, opts: o, identity: svid}
	if err := running.apply(cfg); err != nil {
		closeSides(sides)
		return fmt.Errorf("--config: %w", err)
	}

	api := newAdmin(reg, profiler, running, requests)
	if len(o.AppProbes) > 0 {
		api.Handle("GET "+appprobe.Prefix, appprobe.Handler(o.AppProbes))
	}
	if svid != nil {
		api.ReadyWhen("an SVID", svid.Ready) // a native sidecar holds the app back until then
	}
	adm, err := startAdmin(ctx, o, api, localAdmin(drainNow, func() { letClientsGo(api, sides, log) }, level, log))
	if err != nil {
		closeSides(sides)
		return err
	}
	defer adm.closeLocal()
	go watchLoopholes(ctx, newUIDProcesses(reg), log)

	stopped := serve(sides, adm)
	logReady(o, sides, adm.ln.Addr(), log)
	changed, stopWatch := watchConfig(ctx, o.Config)
	defer stopWatch()
	runErr := serveUntilDone(ctx, stopped, loopStopped, reload, changed, func() { reloadConfig(o.Config, running.apply, log) })

	drain(adm.api, sides, o, runErr == nil, log)
	adm.srv.Close() // only now: /ready answers 503 all through the drain
	if runErr != nil && !errors.Is(runErr, proxy.ErrServerClosed) && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	log.Info().Msg("stopped")
	return nil
}
