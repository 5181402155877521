// Package origdst recovers where a connection that iptables REDIRECTed to the
// agent was originally going, from the kernel's connection tracking
// (SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6).
//
//	dst, err := origdst.FD(fd, false, 15006) // 10.244.1.7:8080, though the socket was accepted on :15006
package origdst

import "errors"

// ErrNotRedirected is returned for a connection that no nat rule rewrote: it
// has no conntrack entry, or its original destination is the address it
// arrived on. Forwarding it would loop back into the agent.
var ErrNotRedirected = errors.New("connection was not redirected (no NAT conntrack entry)")
