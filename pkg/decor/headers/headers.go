// Package headers sets, adds and removes request and response headers.
//
//	headers:
//	  request:  {set: {x-env: prod}, add: {via: veneer}, remove: [x-debug]}
//	  response: {set: {cache-control: no-store}, remove: [server]}
//
// On each side: remove first, then set (replacing), then add (appending).
package headers

import (
	"net/http"

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

func (o ops) empty() bool { return len(o.set)+len(o.add)+len(o.remove) == 0 }

func (o ops) apply(h http.Header) {
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

func (hd *Headers) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd.req.apply(r.Header)
		if !hd.resp.empty() {
			ew := exchange.NewWriter(w)
			ew.BeforeHeader(func(_ int, h http.Header) { hd.resp.apply(h) })
			w = ew
		}
		next.ServeHTTP(w, r)
	})
}
