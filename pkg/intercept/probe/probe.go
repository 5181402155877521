// Package probe is the handshake that lets veneer-init --validate prove, from
// inside the pod, that a connection to a captured port reaches the agent with
// its original destination intact.
//
// The validator connects to a captured port on a loopback address through a
// temporary nat OUTPUT rule that sends it into veneer's inbound chain. Real
// inbound traffic never has a loopback original destination (the kernel drops
// loopback destinations that arrive on any other interface), so the agent
// knows such a connection is a probe and answers with one line:
//
//	veneer-probe original-dst=127.0.0.1:8080
package probe

import (
	"fmt"
	"net/netip"
	"strings"
)

const prefix = "veneer-probe original-dst="

// Is reports whether a connection redirected from dst is a probe.
func Is(dst netip.AddrPort) bool { return dst.Addr().IsLoopback() }

// Reply is the agent's answer to a probe whose original destination was dst.
func Reply(dst netip.AddrPort) string { return prefix + dst.String() + "\n" }

// Parse reads the original destination out of an agent's reply.
func Parse(reply string) (netip.AddrPort, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(reply), prefix)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("reply %q is not from veneer-agent", reply)
	}
	dst, err := netip.ParseAddrPort(rest)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("reply %q: %w", reply, err)
	}
	return dst, nil
}
