package install

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// globalIPv6 returns a global IPv6 address of this namespace, or "" when it
// has none: a pod without one has no IPv6 traffic to capture.
func globalIPv6() (string, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return "", fmt.Errorf("listing IPv6 addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE && a.IP.IsGlobalUnicast() {
			return a.IP.String(), nil
		}
	}
	return "", nil
}
