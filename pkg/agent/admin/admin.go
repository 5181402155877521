// Package admin is the agent's admin HTTP endpoint (port 15000 by default,
// never captured): /metrics for Prometheus, /ready for probes, /healthz,
// and at / the page a person opens after `kubectl port-forward pod/NAME
// 15000`: live charts (fed by /live, read from the same metrics), the
// per-path profiler, the live tap, the running config and the version
// (/version). The page's files are embedded (ui/), with a vendored chart
// library: a pod may have no internet.
//
//	a := admin.New(registry, names) // names: the metrics the live charts read
//	srv := &http.Server{Handler: a}
//	a.SetReady(true) // once the proxy listens
package admin

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"runtime/debug"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin serves the admin endpoints.
type Admin struct {
	mux   *http.ServeMux
	ready atomic.Bool
	// waits are what else /ready waits for, each by what it is.
	waits []wait
}

type wait struct {
	what  string
	ready func() bool
}

// New builds the admin handler over the metrics in g.
func New(g prometheus.Gatherer, n Names) *Admin {
	a := &Admin{mux: http.NewServeMux()}
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		for _, wt := range a.waits {
			if !wt.ready() {
				http.Error(w, "not ready: waiting for "+wt.what, http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	ui, _ := fs.Sub(files, "ui")
	a.mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(ui)))
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
		http.ServeFileFS(w, r, ui, "index.html")
	})
	a.mux.Handle("GET /live", live(g, n))
	a.mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Version())
	})
	return a
}

// LoopbackOnly serves h to clients on the pod's own loopback only, as
// `kubectl port-forward` arrives; others get 403. For what shows live
// traffic (the tap): the admin port is reachable from the pod network, for
// Prometheus.
func LoopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			http.Error(w, "answered on the pod's loopback only: use kubectl port-forward pod/NAME 15000", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

//go:embed ui
var files embed.FS

// Build is what the binary knows of itself.
type Build struct {
	Version  string `json:"version"`            // the module's, "(devel)" from a checkout
	Revision string `json:"revision,omitempty"` // the commit it was built from
	Time     string `json:"time,omitempty"`     // the commit's time
	Modified bool   `json:"modified,omitempty"` // built with uncommitted changes
	Go       string `json:"go"`
}

// Version is the running binary's build.
func Version() Build {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{Version: "unknown"}
	}
	b := Build{Version: bi.Main.Version, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// Handle adds an endpoint.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// ReadyWhen makes /ready wait for ready to say so too, as what: call it
// before serving.
func (a *Admin) ReadyWhen(what string, ready func() bool) {
	a.waits = append(a.waits, wait{what, ready})
}

// SetReady sets what /ready answers: 200 once the proxy listens, 503 before
// and while it drains.
func (a *Admin) SetReady(ready bool) { a.ready.Store(ready) }

func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Local is the admin endpoints that change the agent's state, for a
// listener on localhost only: nothing in the pod network may drain the
// agent or change its log level.
//
//	POST /drain                  start a drain, as SIGTERM does
//	POST /prestop                the pod is terminating: keep serving, but let clients go (the preStop hook)
//	PUT  /log-level?level=debug  debug, info, warn or error
//	GET  /debug/pprof/           Go's profiles, for measuring the agent under load
func Local(drain, preStop func(), setLevel func(string) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		drain()
		w.Write([]byte("draining\n"))
	})
	mux.HandleFunc("POST /prestop", func(w http.ResponseWriter, r *http.Request) {
		preStop()
		w.Write([]byte("letting clients go; serving until SIGTERM\n"))
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
