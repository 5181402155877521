// Package headers sets, adds and removes request and response headers.
//
//	headers:
//	  request:  {set: {x-env: prod}, add: {via: veneer}, remove: [x-debug]}
//	  response: {set: {cache-control: no-store}, remove: [server]}
//
// On each side: remove first, then set (replacing), then add (appending).
package headers

import (
	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

// Headers is a compiled headers section.
type Headers struct {
	req, resp ops
}

type ops struct {
	set, add [][2]string
	remove   []string
}

func compile(o config.HeaderOps) ops {
	var c ops
	for k, v := range o.Set {
		c.set = append(c.set, [2]string{k, v})
	}
	for k, v := range o.Add {
		c.add = append(c.add, [2]string{k, v})
	}
	c.remove = o.Remove
	return c
}

func (o ops) apply(h exchange.Header) {
	for _, k := range o.remove {
		h.Del(k)
	}
	for _, kv := range o.set {
		h.Set(kv[0], kv[1])
	}
	for _, kv := range o.add {
		h.Add(kv[0], kv[1])
	}
}

// New compiles cfg, which config.Parse has validated.
func New(cfg config.Headers) *Headers {
	return &Headers{req: compile(cfg.Request), resp: compile(cfg.Response)}
}

// Name is the config key.
func (hd *Headers) Name() string { return "headers" }

// Request changes the request's headers.
func (hd *Headers) Request(x *exchange.Exchange) exchange.Verdict {
	hd.req.apply(x.Request)
	return exchange.Verdict{}
}

// Response changes the response's headers.
func (hd *Headers) Response(x *exchange.Exchange) { hd.resp.apply(x.Response) }
