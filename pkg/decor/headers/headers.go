// Package headers sets, adds and removes request and response headers.
//
//	headers:
//	  request:  {set: {x-env: prod}, add: {via: veneer}, remove: [x-debug]}
//	  response: {set: {cache-control: no-store}, remove: [server]}
//
// On each side: remove first, then set (replacing), then add (appending).
package headers

import (
	"maps"
	"net/textproto"
	"slices"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/http1"
)

// Key is the block's key in an http section.
const Key = "headers"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config changes request and response headers.
type Config struct {
	Request  Ops `yaml:"request" json:"request"`   // the request's, before it goes to the app
	Response Ops `yaml:"response" json:"response"` // the response's, before it goes to the client
}

// Ops is what to do to one side's headers: remove, then set, then add.
// Each left out does nothing.
type Ops struct {
	Set    map[string]string `yaml:"set" json:"set,omitempty"` // replace, or add when absent
	Add    map[string]string `yaml:"add" json:"add,omitempty"` // append another value
	Remove []string          `yaml:"remove" json:"remove,omitempty"`
}

func (c *Config) Provision() error {
	for _, side := range []struct {
		name string
		ops  Ops
	}{{"request", c.Request}, {"response", c.Response}} {
		names := slices.Concat(slices.Collect(maps.Keys(side.ops.Set)), slices.Collect(maps.Keys(side.ops.Add)), side.ops.Remove)
		for _, n := range names {
			if !http1.Token(n) {
				return config.Errorf(side.name, "%q is not a header name", n)
			}
		}
	}
	return nil
}

// Headers is a compiled headers section.
type Headers struct {
	req, resp ops
}

type ops struct {
	set, add [][2]string
	remove   []string
}

// compile puts the names in canonical form once: a header set on every
// request would otherwise cost a canonical copy of its name each time.
func compile(o Ops) ops {
	var c ops
	for k, v := range o.Set {
		c.set = append(c.set, [2]string{textproto.CanonicalMIMEHeaderKey(k), v})
	}
	for k, v := range o.Add {
		c.add = append(c.add, [2]string{textproto.CanonicalMIMEHeaderKey(k), v})
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

// New compiles cfg, which Provision has checked.
func New(cfg Config) *Headers {
	return &Headers{req: compile(cfg.Request), resp: compile(cfg.Response)}
}

// Name is the config key.
func (hd *Headers) Name() string { return Key }

// Request changes the request's headers.
func (hd *Headers) Request(x *exchange.Exchange) exchange.Verdict {
	hd.req.apply(x.Request)
	return exchange.Verdict{}
}

// Response changes the response's headers.
func (hd *Headers) Response(x *exchange.Exchange) { hd.resp.apply(x.Response) }
