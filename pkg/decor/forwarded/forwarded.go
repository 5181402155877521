// Package forwarded tells the app who the client really is. With REDIRECT
// the app's peer is the agent, so the client's address travels in headers:
// X-Forwarded-For (appended), X-Forwarded-Proto and Forwarded (RFC 7239).
//
//	forwarded: true
package forwarded

import (
	"net/netip"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

// Key is the switch's key in an http section; left out, it is off.
const Key = "forwarded"

// Switch is the kind of the switch.
var Switch = config.Switch(Key, false)

// Forwarded is the decoration.
type Forwarded struct{}

// Name is the config key.
func (Forwarded) Name() string { return Key }

// Request adds the client's address to the request.
func (Forwarded) Request(x *exchange.Exchange) exchange.Verdict {
	if client := x.Client.Addr().Unmap(); client.IsValid() {
		Add(x.Request, client)
	}
	return exchange.Verdict{}
}

// Add appends client to h's forwarding headers.
func Add(h exchange.Header, client netip.Addr) {
	ip := client.String()
	if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
		h.Set("X-Forwarded-For", joinComma(prior)+", "+ip)
	} else {
		h.Set("X-Forwarded-For", ip)
	}
	if h.Get("X-Forwarded-Proto") == "" {
		h.Set("X-Forwarded-Proto", "http")
	}
	node := ip
	if client.Is6() {
		node = `"[` + ip + `]"`
	}
	h.Add("Forwarded", "for="+node+";proto=http")
}

func joinComma(v []string) string {
	s := v[0]
	for _, x := range v[1:] {
		s += ", " + x
	}
	return s
}
