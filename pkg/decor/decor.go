// Package decor is the agent's HTTP decorations: the small interface each
// one implements, the order they run in, the schema that hands each its
// config block, and the chain built from a route's config. Each decoration
// is a package of its own under pkg/decor (accesslog, metrics, stats, tap,
// requestid, authz, ratelimit, fault, circuit, errorpage, headers,
// forwarded) that owns its block: a Config with a Provision that checks it
// and fills its defaults (config.BlockOf), or an on/off switch
// (config.Switch); and that declares its Module (module.go), registered in
// its init: pkg/decor/all links every one in, Order (order.go) names where
// each runs, and Shared (shared.go) is the one pool of what they keep
// across builds. timeout and retry own the forwarder's blocks. A
// decoration has up to three hooks, each a method it implements:
//
//	Request(x)  before the request goes on: change it, or answer in the
//	            app's place (an exchange.Verdict), or hold it (a delay)
//	Response(x) before the response head goes to the client: change it,
//	            or replace its body
//	Done(x)     when the exchange has ended: log it, count it, release
//
// The hooks see an *exchange.Exchange, not net/http's types, so the same
// decorations serve every path a request can take. A Response or Done hook
// runs only for a decoration whose Request let the request go on (or that
// has no Request hook and came before the one that answered), inner
// first, as if each wrapped the rest.
//
//	import _ "github.com/veneermesh/veneer/pkg/decor/all" // every decoration's module
//	cfg, err := config.Load(path, decor.Schema()) // every block decoded by its module
//	chain, err := decor.Build(cfg.Port(8080).HTTP, deps) // once per route, at start and on reload
//	wentOn, v := chain.Request(x, 0)       // then forward, or reply with v
//	chain.Response(x, wentOn)              // before the head is written
//	chain.Done(x, wentOn)
package decor

import (
	"fmt"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Decoration is one decoration of a chain; it implements at least one of
// Requester, Responder and Finisher.
type Decoration interface {
	// Name is the decoration's config key ("rateLimit"), for errors and logs.
	Name() string
}

// Requester sees each request before it goes on.
type Requester interface {
	Request(x *exchange.Exchange) exchange.Verdict
}

// Responder sees each response head before it is sent.
type Responder interface {
	Response(x *exchange.Exchange)
}

// Finisher sees each exchange once it has ended.
type Finisher interface {
	Done(x *exchange.Exchange)
}

type hook[H any] struct {
	at int // the decoration's place in the chain
	h  H
}

// Chain is a route's decorations in order, built once.
type Chain struct {
	names   []string
	req     []hook[Requester]
	resp    []hook[Responder]
	done    []hook[Finisher]
	observe int // the first observe decorations also see requests refused before the chain
}

// NewChain is ds in order; the first observe of them are observers that see
// every exchange, those refused before the chain too (the access log, the
// metrics).
func NewChain(observe int, ds ...Decoration) (*Chain, error) {
	c := &Chain{observe: observe}
	for i, d := range ds {
		c.names = append(c.names, d.Name())
		any := false
		if h, ok := d.(Requester); ok {
			c.req, any = append(c.req, hook[Requester]{i, h}), true
		}
		if h, ok := d.(Responder); ok {
			c.resp, any = append(c.resp, hook[Responder]{i, h}), true
		}
		if h, ok := d.(Finisher); ok {
			c.done, any = append(c.done, hook[Finisher]{i, h}), true
		}
		if !any {
			return nil, fmt.Errorf("decoration %s has no hook", d.Name())
		}
		if i < observe && c.req != nil && c.req[len(c.req)-1].at == i {
			return nil, fmt.Errorf("decoration %s observes, and so may not hold or answer requests", d.Name())
		}
	}
	return c, nil
}

// Names are the chain's decorations, in order.
func (c *Chain) Names() []string { return c.names }

// Len is how many decorations the chain has.
func (c *Chain) Len() int { return len(c.names) }

// Request runs the Request hooks of the decorations from the one at from
// on, in order, until one decides other than to go on. It returns where
// that one is and its verdict, or Len() and the zero verdict when every
// decoration let the request go on. After a verdict with only a Delay, the
// caller waits and calls Request again from the next place.
func (c *Chain) Request(x *exchange.Exchange, from int) (at int, v exchange.Verdict) {
	for _, h := range c.req {
		if h.at < from {
			continue
		}
		if v = h.h.Request(x); v.Delay > 0 || v.Status != 0 {
			return h.at, v
		}
	}
	return len(c.names), exchange.Verdict{}
}

// Response runs the Response hooks of the first wentOn decorations, inner
// first.
func (c *Chain) Response(x *exchange.Exchange, wentOn int) {
	for i := len(c.resp) - 1; i >= 0; i-- {
		if h := c.resp[i]; h.at < wentOn {
			h.h.Response(x)
		}
	}
}

// Done runs the Done hooks of the first wentOn decorations, inner first.
func (c *Chain) Done(x *exchange.Exchange, wentOn int) {
	for i := len(c.done) - 1; i >= 0; i-- {
		if h := c.done[i]; h.at < wentOn {
			h.h.Done(x)
		}
	}
}

// Observers is how many decorations see a request refused before the
// chain: pass it as wentOn to Response and Done for such a request.
func (c *Chain) Observers() int { return c.observe }
