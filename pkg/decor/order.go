package decor

import (
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/decor/accesslog"
	"github.com/veneermesh/veneer/pkg/decor/authz"
	"github.com/veneermesh/veneer/pkg/decor/circuit"
	"github.com/veneermesh/veneer/pkg/decor/errorpage"
	"github.com/veneermesh/veneer/pkg/decor/fault"
	"github.com/veneermesh/veneer/pkg/decor/forwarded"
	"github.com/veneermesh/veneer/pkg/decor/headers"
	"github.com/veneermesh/veneer/pkg/decor/metrics"
	"github.com/veneermesh/veneer/pkg/decor/ratelimit"
	"github.com/veneermesh/veneer/pkg/decor/requestid"
	"github.com/veneermesh/veneer/pkg/decor/stats"
)

// Deps are what the decorations share with the rest of the agent.
type Deps struct {
	Access  zerolog.Logger   // the access log's lines
	Metrics *metrics.Metrics // registered once for the agent
	Stats   *stats.Stats     // the per-path profiler
	// Limiter and Breaker give the chain's owner's rate limiter and
	// breaker for a request's port: state that outlives one config
	// (pool.Pool), shared by a port's routes.
	Limiter func(config.RateLimit) func(port uint16) *ratelimit.Limiter
	Breaker func(config.Circuit) func(port uint16) *circuit.Breaker
}

// module makes a decoration from a route's settings, or nil when its block
// is off.
type module func(h config.HTTP, d Deps) (Decoration, error)

// order is every decoration, outermost first. Adding one is a package and
// a line here. Why this order:
//
//  1. access log, metrics, stats: they observe every exchange, the agent's
//     own answers included, and how long the whole chain took;
//  2. request id and trace context: so that even a denied or limited
//     request has an id in its access log line and its response;
//  3. authorization: denied traffic costs nothing further, not even a token;
//  4. rate limit: before any work is done for the request;
//  5. fault injection: in the app's place, after the request was admitted;
//  6. circuit breaker: counts only requests that will reach the app;
//  7. error pages: replace what the app (or the forwarder) answered;
//  8. headers, then forwarded: the app sees the headers as the operator
//     set them, plus the client's address.
//
// After the last comes the forwarder, with the request timeout and retries.
var order = []module{
	func(h config.HTTP, d Deps) (Decoration, error) {
		return on(config.On(h.AccessLog), accesslog.New(d.Access))
	},
	func(h config.HTTP, d Deps) (Decoration, error) { return on(config.On(h.Metrics), d.Metrics) },
	func(h config.HTTP, d Deps) (Decoration, error) { return on(config.On(h.Metrics), d.Stats) },
	func(h config.HTTP, d Deps) (Decoration, error) {
		ids, trace := config.On(h.RequestID), config.On(h.Tracing)
		return on(ids || trace, requestid.New(ids, trace))
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return opt(h.Authz, func(c config.Authz) (Decoration, error) { return authz.New(c), nil })
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return opt(h.RateLimit, func(c config.RateLimit) (Decoration, error) { return ratelimit.For(d.Limiter(c)), nil })
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return opt(h.Fault, func(c config.Fault) (Decoration, error) { return fault.New(c), nil })
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return opt(h.Circuit, func(c config.Circuit) (Decoration, error) { return circuit.For(d.Breaker(c)), nil })
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return opt(h.ErrorPages, func(c config.ErrorPages) (Decoration, error) { return errorpage.New(c) })
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return opt(h.Headers, func(c config.Headers) (Decoration, error) { return headers.New(c), nil })
	},
	func(h config.HTTP, d Deps) (Decoration, error) {
		return on(config.On(h.Forwarded), forwarded.Forwarded{})
	},
}

// observers is how many of order's first modules only observe.
const observers = 3

// opt builds a decoration from its block, or none when the block is absent.
func opt[C any](c *C, build func(C) (Decoration, error)) (Decoration, error) {
	if c == nil {
		return nil, nil
	}
	return build(*c)
}

func on(yes bool, d Decoration) (Decoration, error) {
	if !yes {
		return nil, nil
	}
	return d, nil
}

// Build is the chain of a route's settings h.
func Build(h config.HTTP, d Deps) (*Chain, error) {
	var ds []Decoration
	observe := 0
	for i, m := range order {
		dec, err := m(h, d)
		if err != nil {
			return nil, err
		}
		if dec == nil {
			continue
		}
		ds = append(ds, dec)
		if i < observers {
			observe++
		}
	}
	return NewChain(observe, ds...)
}

// Each module's hooks, checked by the compiler.
var (
	_ Finisher  = (*accesslog.Log)(nil)
	_ Finisher  = (*metrics.Metrics)(nil)
	_ Finisher  = (*stats.Stats)(nil)
	_ Requester = (*requestid.IDs)(nil)
	_ Responder = (*requestid.IDs)(nil)
	_ Requester = (*authz.Authz)(nil)
	_ Requester = (*ratelimit.Decoration)(nil)
	_ Requester = (*fault.Fault)(nil)
	_ Requester = (*circuit.Decoration)(nil)
	_ Finisher  = (*circuit.Decoration)(nil)
	_ Responder = (*errorpage.Pages)(nil)
	_ Requester = (*headers.Headers)(nil)
	_ Responder = (*headers.Headers)(nil)
	_ Requester = forwarded.Forwarded{}
)
