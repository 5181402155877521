// Package agent is veneer-agent: it wires the proxy listener, the admin
// endpoint and the drain on shutdown together.
//
//	opts, err := agent.ParseFlags(os.Args[1:], os.Stderr)
//	err = agent.Run(ctx, opts, logger) // returns after ctx is done and the drain ends
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/admin"
	"github.com/veneermesh/veneer/pkg/envflag"
	"github.com/veneermesh/veneer/pkg/proxy"
)

// Options is veneer-agent's configuration.
type Options struct {
	Listen         string        // inbound proxy listener, where iptables redirects
	Admin          string        // admin endpoint: /metrics, /ready, /healthz
	DrainTimeout   time.Duration // how long open connections may finish after SIGTERM
	ConnectTimeout time.Duration // how long to wait for the app to accept
	LogLevel       zerolog.Level
}

// ParseFlags reads the agent's flags, each also settable as $VENEER_<FLAG>.
func ParseFlags(args []string, out io.Writer) (Options, error) {
	fs := flag.NewFlagSet("veneer-agent", flag.ContinueOnError)
	fs.SetOutput(out)
	var o Options
	fs.StringVar(&o.Listen, "listen", ":15006", "address of the inbound listener that captured connections are redirected to")
	fs.StringVar(&o.Admin, "admin", ":15000", "address of the admin endpoint (/metrics, /ready, /healthz)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "how long open connections may finish after SIGTERM")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 5*time.Second, "how long to wait for the app to accept a connection")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(out, "veneer-agent forwards the connections veneer-init redirected to it, and decorates them.\n"+
			"Every flag can also be set as $VENEER_NAME, e.g. --drain-timeout as $VENEER_DRAIN_TIMEOUT.\n\n")
		fs.PrintDefaults()
	}
	if err := envflag.Parse(fs, "VENEER_", args); err != nil {
		return Options{}, err
	}
	for name, addr := range map[string]string{"--listen": o.Listen, "--admin": o.Admin} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Options{}, fmt.Errorf("%s: %q is not a host:port address (e.g. :15006)", name, addr)
		}
	}
	if o.DrainTimeout < 0 {
		return Options{}, fmt.Errorf("--drain-timeout: %s is negative", o.DrainTimeout)
	}
	if o.ConnectTimeout <= 0 {
		return Options{}, fmt.Errorf("--connect-timeout: %s is not a positive duration", o.ConnectTimeout)
	}
	var err error
	if o.LogLevel, err = zerolog.ParseLevel(*level); err != nil || *level == "" {
		return Options{}, fmt.Errorf("--log-level: %q is not a level (debug, info, warn or error)", *level)
	}
	return o, nil
}

// Run serves until ctx is done, then drains: /ready turns 503, the listener
// closes, and open connections get DrainTimeout to finish before they are
// closed. A drain that had to close connections is still a clean exit.
func Run(ctx context.Context, o Options, log zerolog.Logger) error {
	log = log.Level(o.LogLevel)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	p, err := proxy.New(proxy.Config{ConnectTimeout: o.ConnectTimeout}, log, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	aln, err := net.Listen("tcp", o.Admin)
	if err != nil {
		ln.Close()
		return fmt.Errorf("--admin: %w", err)
	}
	a := admin.New(reg)
	adminSrv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- p.Serve(ln.(*net.TCPListener)) }()
	go func() { errc <- adminSrv.Serve(aln) }()
	a.SetReady(true)
	log.Info().Str("listen", ln.Addr().String()).Str("admin", aln.Addr().String()).Msg("veneer-agent ready")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	a.SetReady(false)
	log.Info().Dur("drain_timeout", o.DrainTimeout).Msg("draining")
	dctx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	if err := p.Shutdown(dctx); err != nil {
		log.Warn().Msg("drain timed out; closed the connections still open")
	}
	adminSrv.Close()
	if runErr != nil && !errors.Is(runErr, proxy.ErrServerClosed) && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	log.Info().Msg("stopped")
	return nil
}
