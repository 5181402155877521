//go:build !linux

package origdst

import (
	"errors"
	"net/netip"
)

// FD needs Linux's connection tracking.
func FD(fd int, ipv6 bool, port uint16) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("reading original destination needs Linux")
}
