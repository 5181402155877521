package origdst

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h,
// which golang.org/x/sys/unix does not define.
const ip6tSoOriginalDst = 80

// FD returns the original destination of the accepted socket fd; ipv6 says
// whether the connection is IPv6 (not IPv4 on a dual-stack socket), and
// port is the listener's: a destination of that port is the agent itself,
// reached without a nat rule, and never forwarded.
func FD(fd int, ipv6 bool, port uint16) (netip.AddrPort, error) {
	level, opt := unix.SOL_IP, unix.SO_ORIGINAL_DST
	if ipv6 {
		level, opt = unix.SOL_IPV6, ip6tSoOriginalDst
	}
	var buf [unix.SizeofSockaddrInet6]byte
	size := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno == unix.ENOENT {
		return netip.AddrPort{}, ErrNotRedirected
	}
	if errno != 0 {
		return netip.AddrPort{}, fmt.Errorf("reading original destination: getsockopt: %w", errno)
	}
	dst, err := Parse(buf[:size])
	if err != nil {
		return netip.AddrPort{}, err
	}
	if dst.Port() == port {
		return netip.AddrPort{}, ErrNotRedirected
	}
	return dst, nil
}

// Parse decodes the struct sockaddr_in or sockaddr_in6 the kernel returns:
// the family in host order, then the port in network order, then the address.
func Parse(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("original destination: %d-byte sockaddr is too short", len(b))
	}
	switch family := binary.NativeEndian.Uint16(b); family {
	case unix.AF_INET:
		if len(b) < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, fmt.Errorf("original destination: %d-byte sockaddr_in; want %d", len(b), unix.SizeofSockaddrInet4)
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), nil
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, fmt.Errorf("original destination: %d-byte sockaddr_in6; want %d", len(b), unix.SizeofSockaddrInet6)
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), binary.BigEndian.Uint16(b[2:])), nil
	default:
		return netip.AddrPort{}, fmt.Errorf("original destination: address family %d is neither AF_INET nor AF_INET6", family)
	}
}
