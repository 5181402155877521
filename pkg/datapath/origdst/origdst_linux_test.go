package origdst

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func sockaddr4(ip string, port uint16) []byte {
	b := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	a := netip.MustParseAddr(ip).As4()
	copy(b[4:], a[:])
	return b
}

func sockaddr6(ip string, port uint16) []byte {
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	a := netip.MustParseAddr(ip).As16()
	copy(b[8:], a[:])
	return b
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  string
	}{
		{name: "ipv4", in: sockaddr4("10.244.1.7", 8080), want: "10.244.1.7:8080"},
		{name: "ipv4 high port", in: sockaddr4("192.0.2.1", 65535), want: "192.0.2.1:65535"},
		{name: "ipv6", in: sockaddr6("fd00::7", 9090), want: "[fd00::7]:9090"},
		{name: "ipv4-mapped ipv6", in: sockaddr6("::ffff:10.0.0.1", 80), want: "10.0.0.1:80"},
		{name: "truncated ipv4", in: sockaddr4("10.0.0.1", 80)[:6], err: "original destination: 6-byte sockaddr_in; want 16"},
		{name: "truncated ipv6", in: sockaddr6("fd00::1", 80)[:16], err: "original destination: 16-byte sockaddr_in6; want 28"},
		{name: "empty", in: nil, err: "original destination: 0-byte sockaddr is too short"},
		{name: "unknown family", in: []byte{1, 0, 0, 80}, err: "original destination: address family 1 is neither AF_INET nor AF_INET6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Parse error = %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("Parse = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// A connection no nat rule touched must never be forwarded: its "original"
// destination is the agent itself.
func TestNotRedirected(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			l, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback here: %v", network, err)
			}
			defer l.Close()
			c, err := net.Dial(network, l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rc, err := s.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			port := uint16(l.Addr().(*net.TCPAddr).Port)
			rc.Control(func(fd uintptr) { _, err = FD(int(fd), network == "tcp6", port) })
			if !errors.Is(err, ErrNotRedirected) {
				t.Errorf("FD on a direct connection = %v; want ErrNotRedirected", err)
			}
		})
	}
}
