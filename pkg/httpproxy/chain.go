package httpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/decor/accesslog"
	"github.com/veneermesh/veneer/pkg/decor/authz"
	"github.com/veneermesh/veneer/pkg/decor/circuit"
	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/decor/errorpage"
	"github.com/veneermesh/veneer/pkg/exchange"
	"github.com/veneermesh/veneer/pkg/decor/fault"
	"github.com/veneermesh/veneer/pkg/decor/forwarded"
	"github.com/veneermesh/veneer/pkg/decor/headers"
	"github.com/veneermesh/veneer/pkg/pool"
	"github.com/veneermesh/veneer/pkg/decor/ratelimit"
	"github.com/veneermesh/veneer/pkg/decor/requestid"
	"github.com/veneermesh/veneer/pkg/decor/retry"
)

// decoration wraps a handler.
type decoration func(http.Handler) http.Handler

// chain builds the decorations of h around the forwarder, in this order,
// outermost first:
//
//  1. access log, metrics, stats: they see every response, the agent's own
//     included, and how long the whole chain took;
//  2. request id and trace context: so that even a denied or limited request
//     has an id in its access log line and its response;
//  3. authorization: denied traffic costs nothing further, not even a token;
//  4. rate limit: before any work is done for the request;
//  5. fault injection: in the app's place, after the request was admitted;
//  6. circuit breaker: counts only requests that will reach the app;
//  7. error pages: replace what the app (or the forwarder) answered;
//  8. headers, then forwarded: the app sees the headers as the operator set
//     them, plus the client's address;
//  9. the forwarder, with the request timeout and retries.
func (s *Server) chain(h config.HTTP, own owners) (http.Handler, func(http.Handler) http.Handler, error) {
	var ds []decoration
	if config.On(h.AccessLog) {
		ds = append(ds, accesslog.New(s.access).Wrap)
	}
	if config.On(h.Metrics) {
		ds = append(ds, s.metrics.Wrap, s.stats.Load().Wrap)
	}
	observed := len(ds)
	if config.On(h.RequestID) || config.On(h.Tracing) {
		ds = append(ds, requestid.New(config.On(h.RequestID), config.On(h.Tracing)).Wrap)
	}
	if h.Authz != nil {
		ds = append(ds, authz.New(*h.Authz).Wrap)
	}
	if h.RateLimit != nil {
		ds = append(ds, ratelimit.PerPort(shared(s.limiters, own.rateLimit, *h.RateLimit)))
	}
	if h.Fault != nil {
		ds = append(ds, fault.New(*h.Fault).Wrap)
	}
	if h.Circuit != nil {
		ds = append(ds, circuit.PerPort(shared(s.breakers, own.circuit, *h.Circuit)))
	}
	if h.ErrorPages != nil {
		p, err := errorpage.New(*h.ErrorPages)
		if err != nil {
			return nil, nil, err
		}
		ds = append(ds, p.Wrap)
	}
	if h.Headers != nil {
		ds = append(ds, headers.New(*h.Headers).Wrap)
	}
	if config.On(h.Forwarded) {
		ds = append(ds, forwarded.Wrap)
	}

	wrap := func(ds []decoration, h http.Handler) http.Handler {
		for i := len(ds) - 1; i >= 0; i-- {
			h = ds[i](h)
		}
		return h
	}
	observe := func(h http.Handler) http.Handler { return wrap(ds[:observed], h) }
	return wrap(ds, s.forwarder(h)), observe, nil
}

// forwarder builds the chain's forwarder (forward.go), with its timeouts
// and retries.
func (s *Server) forwarder(h config.HTTP) http.Handler {
	var rt http.RoundTripper = roundTripper{s}
	if h.Retries != nil {
		rt = retry.New(*h.Retries, rt)
	}
	f := &forwarder{rt: rt, connect: 5 * time.Second}
	if t := h.Timeouts; t != nil {
		f.connect, f.request = t.Connect.D(), t.Request.D()
	}
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			hc := pr.In.Context().Value(connKey{}).(*conn)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = hc.dstAddr
			pr.Out.Host = pr.In.Host
			// ReverseProxy drops these before Rewrite; a transparent hop keeps them.
			for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			dropExpect(pr.Out.Header)
			if pr.In.ProtoMajor == 1 {
				// Header names as the client spelled them (and the app's
				// response's as the app spelled them: responseCase).
				hc.names.Restore(pr.Out.Header)
			}
		},
		Transport:    rt,
		BufferPool:   bufferPool{},
		ErrorHandler: errorHandler,
		ErrorLog:     s.errorLog,
	}
	return f
}

var errRequestTimeout = errors.New("request timeout")

// responseCase is the HTTP/1.1 transports' GotConn hook: it learns which
// app connection serves the request, so that the response's header names go
// to the client as the app spelled them.
func responseCase(req *http.Request, c net.Conn) {
	if ac, ok := c.(*appConn); ok {
		if w := exchange.From(req.Context()).W; w != nil {
			w.Spelling = &ac.names
		}
	}
}

// connectTimeout bounds connecting to the app for the request of ctx: its
// chain's, or 5s.
func connectTimeout(ctx context.Context) time.Duration {
	if d := exchange.From(ctx).ConnectTimeout; d > 0 {
		return d
	}
	return 5 * time.Second
}

// roundTripper picks HTTP/1.1 or h2c as the client used, and times the app.
type roundTripper struct{ s *Server }

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	hc := req.Context().Value(connKey{}).(*conn)
	resp, err := hc.transport(t.s, req.ProtoMajor == 2).RoundTrip(req)
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
		exchange.Reply(w, r, http.StatusBadRequest, exchange.Malformed, "malformed or stalled request body")
	case errors.Is(context.Cause(ctx), errRequestTimeout):
		exchange.Reply(w, r, http.StatusGatewayTimeout, exchange.UpstreamTimeout, "the app did not answer within the request timeout")
	case ctx.Err() != nil:
		exchange.From(ctx).AddFlag(exchange.DownstreamReset)
		w.WriteHeader(499) // logged only: the client is gone
	case retry.IsConnectFailure(err) || errors.Is(err, os.ErrDeadlineExceeded):
		exchange.Reply(w, r, http.StatusServiceUnavailable, exchange.UpstreamFailure, "the app is not reachable")
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		exchange.Reply(w, r, http.StatusServiceUnavailable, exchange.UpstreamReset, "the app closed the connection before answering")
	default:
		exchange.Reply(w, r, http.StatusBadGateway, exchange.UpstreamReset, "the app's response was not valid HTTP")
	}
}

// bufferPool lends ReverseProxy its copy buffers (the forwarder's copyBody
// takes them from buffers directly). It pools array pointers: a slice put
// in a sync.Pool would allocate its header on every Put.
type bufferPool struct{}

const bufSize = 32 << 10

var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[bufSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) == bufSize {
		buffers.Put((*[bufSize]byte)(b[:bufSize]))
	}
}

// route is one chain and the prefix that selects it.
type route struct {
	prefix  string
	handler http.Handler
	// observe is the chain's access log and metrics alone, for requests
	// refused before the chain.
	observe func(http.Handler) http.Handler
}

// refuse answers a request the agent will not forward, still logged and
// counted by the chain's access log and metrics.
func (rt route) refuse(w http.ResponseWriter, r *http.Request, status int, why string) {
	rt.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exchange.Reply(w, r, status, exchange.Malformed, why)
	})).ServeHTTP(w, r)
}

// ports holds the routes of one port, longest prefix first, then the
// port's own chain.
type portRoutes []route

func (p portRoutes) match(path string) route {
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

func (t *table) route(port uint16, path string) route {
	if p, ok := t.ports[port]; ok {
		return p.match(path)
	}
	return t.def.match(path)
}

// owners name who a chain's shared state belongs to (pool.Pool keys): the
// port's, or a route's that sets its own. A section that serves many ports
// (the default, outbound) is named with "port *": each port the requests
// come to has its own, named with the port in the star's place.
type owners struct{ rateLimit, circuit string }

const eachPort = " port *"

// shared gives a decoration the value of owner in p: the one value of a
// fixed port's section or route, or for a section of many ports each
// port's own, found once per port and then read without a lock.
func shared[C any, V any](p *pool.Pool[C, V], owner string, cfg C) func(port uint16) V {
	section, route, perPort := strings.Cut(owner, eachPort)
	if !perPort {
		v := p.Get(owner, cfg)
		return func(uint16) V { return v }
	}
	var ports sync.Map // uint16 -> V
	return func(port uint16) V {
		if v, ok := ports.Load(port); ok {
			return v.(V)
		}
		v, _ := ports.LoadOrStore(port, p.Get(section+" port "+strconv.Itoa(int(port))+route, cfg))
		return v.(V)
	}
}

// starred is the owner a port's own key in a section of many ports comes
// from ("default port 8080 route /a" from "default port * route /a"), or
// key itself.
func starred(key string) string {
	for _, section := range []string{"default port ", "outbound port "} {
		if rest, ok := strings.CutPrefix(key, section); ok {
			n := strings.IndexByte(rest, ' ')
			if n < 0 {
				n = len(rest)
			}
			return section + "*" + rest[n:]
		}
	}
	return key
}

func (s *Server) build(cfg *config.Config) (*table, error) {
	live := map[string]bool{} // the owners of this config, for the pools
	routes := func(section string, pc config.Port) (portRoutes, error) {
		live[section] = true
		var out portRoutes
		for _, r := range pc.Routes {
			own := owners{rateLimit: section, circuit: section}
			if r.HTTP.RateLimit != nil {
				own.rateLimit = section + " route " + r.Prefix
			}
			if r.HTTP.Circuit != nil {
				own.circuit = section + " route " + r.Prefix
			}
			live[own.rateLimit], live[own.circuit] = true, true
			h, obs, err := s.chain(pc.HTTP.Merged(r.HTTP), own)
			if err != nil {
				return nil, err
			}
			out = append(out, route{prefix: r.Prefix, handler: h, observe: obs})
		}
		sort.SliceStable(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
		h, obs, err := s.chain(pc.HTTP, owners{rateLimit: section, circuit: section})
		if err != nil {
			return nil, err
		}
		return append(out, route{handler: h, observe: obs}), nil
	}
	t := &table{ports: map[uint16]portRoutes{}}
	var err error
	if s.direction == "outbound" {
		// One section for every destination the app calls.
		if t.def, err = routes("outbound"+eachPort, cfg.Outbound); err != nil {
			return nil, err
		}
	} else {
		if t.def, err = routes("default"+eachPort, cfg.Default); err != nil {
			return nil, err
		}
		for _, p := range cfg.PortNumbers() {
			if t.ports[p], err = routes("port "+strconv.Itoa(int(p)), cfg.Port(p)); err != nil {
				return nil, err
			}
		}
	}
	// What this config no longer has lets go of its buckets and counts; a
	// section of many ports keeps every port's.
	keep := func(key string) bool { return live[starred(key)] }
	s.limiters.Retain(keep)
	s.breakers.Retain(keep)
	return t, nil
}
