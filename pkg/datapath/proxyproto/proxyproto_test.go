package proxyproto

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestV1(t *testing.T) {
	for _, tc := range []struct{ src, dst, want string }{
		{"10.0.0.1:5555", "10.0.0.2:8080", "PROXY TCP4 10.0.0.1 10.0.0.2 5555 8080\r\n"},
		{"[::ffff:10.0.0.1]:5555", "10.0.0.2:8080", "PROXY TCP4 10.0.0.1 10.0.0.2 5555 8080\r\n"},
		{"[fd00::1]:5555", "[fd00::2]:80", "PROXY TCP6 fd00::1 fd00::2 5555 80\r\n"},
	} {
		if got := string(Header(1, netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst))); got != tc.want {
			t.Errorf("v1 %s -> %s = %q; want %q", tc.src, tc.dst, got, tc.want)
		}
	}
}

func TestV2(t *testing.T) {
	got := Header(2, netip.MustParseAddrPort("10.0.0.1:5555"), netip.MustParseAddrPort("10.0.0.2:8080"))
	// The example layout of the HAProxy spec: signature, 0x21, 0x11, length 12,
	// addresses, ports.
	want, _ := hex.DecodeString("0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "0a000001" + "0a000002" + "15b3" + "1f90")
	if !bytes.Equal(got, want) {
		t.Errorf("v2 = %x; want %x", got, want)
	}
	got6 := Header(2, netip.MustParseAddrPort("[fd00::1]:1"), netip.MustParseAddrPort("[fd00::2]:2"))
	if len(got6) != 16+36 || got6[13] != 0x21 || got6[15] != 36 {
		t.Errorf("v2 IPv6 = %x; want family 0x21 and 36 bytes of addresses", got6)
	}
}
