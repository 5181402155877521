package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/admin"
	"github.com/veneermesh/veneer/pkg/datapath/listen"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/decor/metrics"
)

// adminHeaderTimeout bounds how long an admin client may take to send a
// request's head.
const adminHeaderTimeout = 5 * time.Second

// adminServers are the admin endpoint (--admin) and, with --admin-local,
// the loopback one whose endpoints change the agent's state.
type adminServers struct {
	api   *admin.Admin
	ln    net.Listener
	srv   *http.Server
	local *http.Server // nil without --admin-local
}

// newAdmin is --admin's handler: admin's endpoints and page over reg, with
// the HTTP profiler's GET /stats, the running config's GET /config and the
// live tap's GET /tap, which shows live requests and so answers only on the
// pod's loopback (kubectl port-forward's way in).
func newAdmin(reg prometheus.Gatherer, stats, config, tap http.Handler) *admin.Admin {
	a := admin.New(reg, admin.Names{Requests: metrics.RequestsName, Duration: metrics.DurationName,
		RequestSize: metrics.RequestSizeName, ResponseSize: metrics.ResponseSizeName, Active: proxy.ActiveName})
	a.Handle("GET /stats", stats)
	a.Handle("GET /config", config)
	a.Handle("GET /tap", admin.LoopbackOnly(tap))
	return a
}

// localAdmin is --admin-local's handler: POST /drain calls drainNow, POST
// /prestop calls preStop, PUT /log-level sets level.
func localAdmin(drainNow, preStop func(), level *logLevel, log zerolog.Logger) http.Handler {
	return admin.Local(func() { log.Info().Msg("drain asked for on --admin-local"); drainNow() }, preStop, level.set)
}

// startAdmin opens --admin's listener, for serve to serve on, and opens
// --admin-local's, if any, and serves it at once.
func startAdmin(ctx context.Context, o Options, api *admin.Admin, local http.Handler) (*adminServers, error) {
	ln, err := listen.Listen(ctx, o.Admin, nil)
	if err != nil {
		return nil, fmt.Errorf("--admin: %w", err)
	}
	a := &adminServers{api: api, ln: ln, srv: &http.Server{Handler: api, ReadHeaderTimeout: adminHeaderTimeout}}
	if o.AdminLocal == "" {
		return a, nil
	}
	lln, err := listen.Listen(ctx, o.AdminLocal, nil)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--admin-local: %w", err)
	}
	a.local = &http.Server{ReadHeaderTimeout: adminHeaderTimeout, Handler: local}
	go a.local.Serve(lln)
	return a, nil
}

func (a *adminServers) closeLocal() {
	if a.local != nil {
		a.local.Close()
	}
}

// logLevel is the level below which log events are dropped, as a
// zerolog.Hook; PUT /log-level on --admin-local changes it while the agent
// runs.
type logLevel struct{ v atomic.Int32 }

func newLogLevel(l zerolog.Level) *logLevel {
	ll := &logLevel{}
	ll.v.Store(int32(l))
	return ll
}

func (ll *logLevel) Run(e *zerolog.Event, l zerolog.Level, _ string) {
	if l < zerolog.Level(ll.v.Load()) {
		e.Discard()
	}
}

func (ll *logLevel) set(s string) error {
	l, err := zerolog.ParseLevel(s)
	if err != nil || s == "" {
		return fmt.Errorf("level: %q is not a level (debug, info, warn or error)", s)
	}
	ll.v.Store(int32(l))
	return nil
}
