package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/decor/retry"
	"github.com/veneermesh/veneer/pkg/decor/timeout"
)

// chain builds a route's decorations (pkg/decor, which says in what order
// and why) and its forwarder, with its timeouts and retries. owner names
// who owns the state of each block on this route (decor.Deps.Owner).
func (s *Server) chain(h config.HTTP, st config.Stats, owner func(key string) string) (*route, error) {
	c, err := decor.Build(h, decor.Deps{Access: s.access, Registry: s.reg, Stats: st, Shared: s.shared, Owner: owner})
	if err != nil {
		return nil, err
	}
	t, ok := config.Get[timeout.Config](h, timeout.Key)
	if !ok {
		t = timeout.Defaults
	}
	rt := &route{chain: c, connect: t.Connect.D(), request: t.Request.D()}
	if r, ok := config.Get[retry.Config](h, retry.Key); ok {
		rt.retry = retry.New(r, roundTripper{})
	}
	rt.forward = s.forwarder(rt)
	return rt, nil
}

// forwarder builds the route's forwarder for HTTP/2 (h2.go), with
// its timeouts and retries.
func (s *Server) forwarder(r *route) http.Handler {
	var rt http.RoundTripper = roundTripper{}
	if r.retry != nil {
		rt = r.retry
	}
	f := &forwarder{connect: r.connect, request: r.request}
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			hc := pr.In.Context().Value(connKey{}).(*h2conn)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = hc.dstAddr
			pr.Out.Host = pr.In.Host
			// ReverseProxy drops these before Rewrite; a transparent hop keeps them.
			for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			// The agent answers Expect: 100-continue itself (net/http's
			// server sends 100 Continue when the body is first read), so
			// the app is not asked: its own would reach the client as a
			// second one. Envoy does the same by default.
			delete(pr.Out.Header, "Expect")
		},
		Transport:    rt,
		BufferPool:   bufferPool{},
		ErrorHandler: errorHandler,
		ErrorLog:     s.errorLog,
	}
	return f
}

var errRequestTimeout = errors.New("request timeout")

// connectTimeout bounds connecting to the app for the request of ctx: its
// chain's, or 5s.
func connectTimeout(ctx context.Context) time.Duration {
	if d := exchange.From(ctx).ConnectTimeout; d > 0 {
		return d
	}
	return 5 * time.Second
}

// roundTripper sends a request over its connection's transport, and times
// the app.
type roundTripper struct{}

func (roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	hc := req.Context().Value(connKey{}).(*h2conn)
	resp, err := hc.transport().RoundTrip(req)
	if err == nil {
		exchange.From(req.Context()).SetUpstreamTime(time.Since(start))
	}
	return resp, err
}

// errorHandler answers for an app that failed: 504 UT when the request
// timeout ran out, 503 UF when the app could not be reached, 503 UC when it
// closed or reset the connection; nothing when the client itself left.
func errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	exchange.From(ctx).SetFailure(err.Error())
	switch {
	case exchange.From(ctx).BodyErr() != nil && ctx.Err() == nil:
		// The client's body, not the app, failed: a malformed chunk, or a
		// client that stalled mid-body. The app got a cut request, which it
		// cannot take for a complete one.
		w.Header().Set("Connection", "close")
		exchange.Reply(w, r, exchange.BadBody)
	case errors.Is(context.Cause(ctx), errRequestTimeout):
		exchange.Reply(w, r, exchange.TimedOut)
	case ctx.Err() != nil:
		exchange.From(ctx).AddFlag(exchange.DownstreamReset)
		w.WriteHeader(499) // logged only: the client is gone
	case retry.IsConnectFailure(err) || errors.Is(err, os.ErrDeadlineExceeded):
		exchange.Reply(w, r, exchange.Unreachable)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		exchange.Reply(w, r, exchange.ClosedEarly)
	default:
		exchange.Reply(w, r, exchange.InvalidResponse)
	}
}

// bufferPool lends ReverseProxy its copy buffers. It pools array
// pointers: a slice put in a sync.Pool would allocate its header on every
// Put.
type bufferPool struct{}

const bufSize = 32 << 10

var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[bufSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) == bufSize {
		buffers.Put((*[bufSize]byte)(b[:bufSize]))
	}
}

// route is one chain, how its requests go to the app, and the prefix that
// selects it.
type route struct {
	prefix  string
	chain   *decor.Chain
	forward http.Handler // HTTP/2's (h2.go)
	// The loop's path reads these itself: the connect and request
	// timeouts (0: none) and the retry policy (nil: none).
	connect, request time.Duration
	retry            *retry.Retrier
}

// serve runs the request through the route's decorations and, when they
// let it go on, the forwarder: net/http's side of pkg/decor's hooks.
func (rt *route) serve(w *exchange.Writer, r *http.Request, ex *exchange.Exchange) {
	at, v := rt.chain.Request(ex, 0)
	// Deferred: a forwarder that panics (http.ErrAbortHandler, a response
	// cut off) still ends the exchange, so a breaker's count comes down.
	defer func() { rt.chain.Done(ex, at) }()
	for v.Delay > 0 {
		t := time.NewTimer(v.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			ex.AddFlag(exchange.DownstreamReset)
			w.Hooks(rt.chain, at)
			w.WriteHeader(499) // logged only: the client is gone
			return
		}
		if v.Status != 0 {
			break
		}
		at, v = rt.chain.Request(ex, at+1)
	}
	w.Hooks(rt.chain, at)
	if v.Status != 0 {
		exchange.Reply(w, r, v)
		return
	}
	rt.forward.ServeHTTP(w, r)
}

// refuse answers a request the agent will not forward, still logged and
// counted by the chain's observers.
func (rt *route) refuse(w *exchange.Writer, r *http.Request, ex *exchange.Exchange, status int, why string) {
	n := rt.chain.Observers()
	w.Hooks(rt.chain, n)
	exchange.Reply(w, r, exchange.Refusal(status, why))
	rt.chain.Done(ex, n)
}

// ports holds the routes of one port, longest prefix first, then the
// port's own chain.
type portRoutes []*route

func (p portRoutes) match(path string) *route {
	for _, r := range p {
		if strings.HasPrefix(path, r.prefix) {
			return r
		}
	}
	return p[len(p)-1]
}

// table is every port's routes, built once per config.
type table struct {
	ports map[uint16]portRoutes
	def   portRoutes
}

func (t *table) route(port uint16, path string) *route {
	if p, ok := t.ports[port]; ok {
		return p.match(path)
	}
	return t.def.match(path)
}

// build is cfg's route table. The owners of the decorations' state are
// named after the server's direction, its section and route: a section of
// many ports (the default, outbound) with decor.EachPort, each port the
// requests come to having its own.
func (s *Server) build(cfg *config.Config) (*table, error) {
	scope := s.direction + " "
	s.shared.Begin(scope)
	// section names the owners of shared state; path is the config's
	// ("ports.8080"), for errors.
	routes := func(section, path string, pc config.Port) (portRoutes, error) {
		section = scope + section
		var out portRoutes
		for i, r := range pc.Routes {
			owner := func(key string) string {
				if _, ok := r.HTTP[key]; ok {
					return section + " route " + r.Prefix // a route with its own
				}
				return section
			}
			rt, err := s.chain(pc.HTTP.Merged(r.HTTP), cfg.Stats, owner)
			if err != nil {
				return nil, fmt.Errorf("%s.routes[%d]: %w", path, i, err)
			}
			rt.prefix = r.Prefix
			out = append(out, rt)
		}
		sort.SliceStable(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
		rt, err := s.chain(pc.HTTP, cfg.Stats, func(string) string { return section })
		if err != nil {
			return nil, fmt.Errorf("%s.http: %w", path, err)
		}
		return append(out, rt), nil
	}
	t := &table{ports: map[uint16]portRoutes{}}
	var err error
	if s.direction == "outbound" {
		// One section for every destination the app calls.
		if t.def, err = routes("outbound"+decor.EachPort, "outbound", cfg.Outbound); err != nil {
			return nil, err
		}
	} else {
		if t.def, err = routes("default"+decor.EachPort, "default", cfg.Default); err != nil {
			return nil, err
		}
		for _, p := range cfg.PortNumbers() {
			if t.ports[p], err = routes("port "+strconv.Itoa(int(p)), "ports."+strconv.Itoa(int(p)), cfg.Port(p)); err != nil {
				return nil, err
			}
		}
	}
	// What this config no longer has lets go of its buckets and counts; a
	// section of many ports keeps every port's.
	s.shared.Sweep(scope)
	return t, nil
}
