// Package admin is the agent's admin HTTP endpoint (port 15000 by default,
// never captured): /metrics for Prometheus, /ready for probes, /healthz.
//
//	a := admin.New(registry)
//	srv := &http.Server{Handler: a}
//	a.SetReady(true) // once the proxy listens
package admin

import (
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin serves the admin endpoints.
type Admin struct {
	mux   *http.ServeMux
	ready atomic.Bool
}

// New builds the admin handler over the metrics in g.
func New(g prometheus.Gatherer) *Admin {
	a := &Admin{mux: http.NewServeMux()}
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	return a
}

// Handle adds an endpoint.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// SetReady sets what /ready answers: 200 once the proxy listens, 503 before
// and while it drains.
func (a *Admin) SetReady(ready bool) { a.ready.Store(ready) }

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Local is the admin endpoints that change the agent's state, for a
// listener on localhost only: nothing in the pod network may drain the
// agent or change its log level.
//
//	POST /drain                  start a drain, as SIGTERM does
//	PUT  /log-level?level=debug  debug, info, warn or error
//	GET  /debug/pprof/           Go's profiles, for measuring the agent under load
func Local(drain func(), setLevel func(string) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		drain()
		w.Write([]byte("draining\n"))
	})
	mux.HandleFunc("PUT /log-level", func(w http.ResponseWriter, r *http.Request) {
		if err := setLevel(r.URL.Query().Get("level")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}
