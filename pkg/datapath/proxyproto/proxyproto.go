// Package proxyproto writes the PROXY protocol header (HAProxy's, versions 1
// and 2) that tells an app which understands it (nginx, HAProxy, Envoy) who
// the client really is: a third way, with tproxy mode and X-Forwarded-For,
// to hand over the client address.
//
//	ports:
//	  "8080": {proxyProtocol: v2}
//
//	conn.Write(proxyproto.Header(2, client, dst))
package proxyproto

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// signature opens every version 2 header.
var signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Header is the header for a TCP connection from src to dst, in version 1
// (text) or 2 (binary).
func Header(version int, src, dst netip.AddrPort) []byte {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	v6 := src.Addr().Is6() || dst.Addr().Is6()
	if v6 {
		// Both sides must be of one family: lift an IPv4 side into IPv6.
		src = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
		dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	}
	if version == 1 {
		proto := "TCP4"
		if v6 {
			proto = "TCP6"
		}
		return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", proto, src.Addr(), dst.Addr(), src.Port(), dst.Port())
	}
	h := append([]byte{}, signature...)
	h = append(h, 0x21) // version 2, PROXY command
	if v6 {
		h = append(h, 0x21) // TCP over IPv6
		h = binary.BigEndian.AppendUint16(h, 36)
		s, d := src.Addr().As16(), dst.Addr().As16()
		h = append(append(h, s[:]...), d[:]...)
	} else {
		h = append(h, 0x11) // TCP over IPv4
		h = binary.BigEndian.AppendUint16(h, 12)
		s, d := src.Addr().As4(), dst.Addr().As4()
		h = append(append(h, s[:]...), d[:]...)
	}
	h = binary.BigEndian.AppendUint16(h, src.Port())
	return binary.BigEndian.AppendUint16(h, dst.Port())
}
