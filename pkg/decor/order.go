package decor

import (
	"io"
	"slices"

	"github.com/veneermesh/veneer/pkg/agent/config"
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
	"github.com/veneermesh/veneer/pkg/decor/retry"
	"github.com/veneermesh/veneer/pkg/decor/stats"
	"github.com/veneermesh/veneer/pkg/decor/tap"
	"github.com/veneermesh/veneer/pkg/decor/timeout"
)

// Deps are what the decorations share with the rest of the agent.
type Deps struct {
	Access  io.Writer        // where the access log's lines go, one Write each
	Metrics *metrics.Metrics // registered once for the agent
	Stats   *stats.Stats     // the per-path profiler
	Tap     *tap.Tap         // the admin page's live tap; nil: none
	Spans   requestid.Spans  // where sampled requests' spans go (OTLP); nil: nowhere
	// Limiter and Breaker give the chain's owner's rate limiter and
	// breaker for a request's port: state that outlives one config
	// (pool.Pool), shared by a port's routes.
	Limiter func(ratelimit.Config) func(port uint16) *ratelimit.Limiter
	Breaker func(circuit.Config) func(port uint16) *circuit.Breaker
}

// A module is a decoration in the chain: the blocks of a route's settings
// it reads (their kinds, which decode and check them when the config is
// loaded), and how it is made from them; a nil decoration is off.
type module struct {
	kinds []config.Kind
	build func(h config.HTTP, d Deps) (Decoration, error)
}

// order is every decoration, outermost first. Adding one is a package and
// a line here. Why this order:
//
//  1. access log, metrics, stats, tap: they observe every exchange, the
//     agent's own answers included, and how long the whole chain took;
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
// After the last comes the forwarder, with the request timeout and retries
// (forwarder's blocks).
var order = []module{
	block(accesslog.Block, func(c accesslog.Config, d Deps) (Decoration, error) {
		if c.Off {
			return nil, nil
		}
		return accesslog.New(c, d.Access), nil
	}),
	switched(metrics.Switch, func(d Deps) Decoration { return d.Metrics }),
	switched(metrics.Switch, func(d Deps) Decoration { return d.Stats }),
	{nil, func(_ config.HTTP, d Deps) (Decoration, error) { return on(d.Tap != nil, d.Tap), nil }}, // no config: always there
	{[]config.Kind{requestid.Switch, requestid.TracingSwitch}, func(h config.HTTP, d Deps) (Decoration, error) {
		ids, trace := config.On(h, requestid.KeyRequestID), config.On(h, requestid.KeyTracing)
		if trace && d.Spans != nil {
			return requestid.NewTraced(ids, d.Spans), nil
		}
		return on(ids || trace, requestid.New(ids, trace)), nil
	}},
	block(authz.Block, func(c authz.Config, d Deps) (Decoration, error) { return authz.New(c), nil }),
	block(ratelimit.Block, func(c ratelimit.Config, d Deps) (Decoration, error) { return ratelimit.For(d.Limiter(c)), nil }),
	block(fault.Block, func(c fault.Config, d Deps) (Decoration, error) { return fault.New(c), nil }),
	block(circuit.Block, func(c circuit.Config, d Deps) (Decoration, error) { return circuit.For(d.Breaker(c)), nil }),
	block(errorpage.Block, func(c errorpage.Config, d Deps) (Decoration, error) { return errorpage.New(c) }),
	block(headers.Block, func(c headers.Config, d Deps) (Decoration, error) { return headers.New(c), nil }),
	switched(forwarded.Switch, func(Deps) Decoration { return forwarded.Forwarded{} }),
}

// forwarder's blocks are read by the forwarder after the chain
// (pkg/datapath/httpproxy): its timeouts and retries.
var forwarder = []config.Kind{timeout.Block, retry.Block}

// observers is how many of order's first modules only observe.
const observers = 4

// Schema hands the config's blocks to the modules that own them: every
// block a module of order or the forwarder reads, and the TCP
// authorization's.
var Schema = config.Schema{HTTP: kinds(), TCPAuthz: authz.TCPBlock}

func kinds() []config.Kind {
	var ks []config.Kind
	for _, m := range order {
		ks = append(ks, m.kinds...)
	}
	ks = append(ks, forwarder...)
	return slices.CompactFunc(ks, func(a, b config.Kind) bool { return a.Key == b.Key }) // metrics and stats share theirs
}

// block is the module of kind k's block, made from it when a route has it.
func block[C any](k config.Kind, build func(C, Deps) (Decoration, error)) module {
	return module{[]config.Kind{k}, func(h config.HTTP, d Deps) (Decoration, error) {
		c, ok := config.Get[C](h, k.Key)
		if !ok {
			return nil, nil
		}
		return build(c, d)
	}}
}

// switched is the module of switch k, made when the switch is on.
func switched(k config.Kind, make func(Deps) Decoration) module {
	return module{[]config.Kind{k}, func(h config.HTTP, d Deps) (Decoration, error) {
		return on(config.On(h, k.Key), make(d)), nil
	}}
}

func on(yes bool, d Decoration) Decoration {
	if !yes {
		return nil
	}
	return d
}

// Build is the chain of a route's settings h.
func Build(h config.HTTP, d Deps) (*Chain, error) {
	var ds []Decoration
	observe := 0
	for i, m := range order {
		dec, err := m.build(h, d)
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
	_ Finisher  = (*tap.Tap)(nil)
	_ Requester = (*requestid.IDs)(nil)
	_ Responder = (*requestid.IDs)(nil)
	_ Finisher  = (*requestid.Traced)(nil)
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
