// Package forwarded tells the app who the client really is. With REDIRECT
// the app's peer is the agent, so the client's address travels in headers:
// X-Forwarded-For (appended), X-Forwarded-Proto and Forwarded (RFC 7239).
//
//	forwarded: true
package forwarded

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Key is the switch's key in an http section; left out, it is off.
const Key = "forwarded"

// Switch is the kind of the switch.
var Switch = config.Switch(Key, false)

// Forwarded is the decoration.
type Forwarded struct{}

// Name is the config key.
func (Forwarded) Name() string { return Key }

// Request adds the client's address to the request, its values made in
// the exchange's scratch room (no allocation).
func (Forwarded) Request(x *exchange.Exchange) exchange.Verdict {
	client := x.Client.Addr().Unmap()
	if !client.IsValid() {
		return exchange.Verdict{}
	}
	h := x.Request
	b := x.Scratch()
	for _, v := range h.Values("X-Forwarded-For") {
		b = append(append(b, v...), ", "...)
	}
	h.Set("X-Forwarded-For", x.Keep(client.AppendTo(b)))
	if h.Get("X-Forwarded-Proto") == "" {
		h.Set("X-Forwarded-Proto", "http")
	}
	b = append(x.Scratch(), "for="...)
	if client.Is6() {
		b = append(client.AppendTo(append(b, `"[`...)), `]"`...)
	} else {
		b = client.AppendTo(b)
	}
	h.Add("Forwarded", x.Keep(append(b, ";proto=http"...)))
	return exchange.Verdict{}
}
