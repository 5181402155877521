package probe

import (
	"net/netip"
	"testing"
)

func TestReplyParse(t *testing.T) {
	for _, s := range []string{"127.0.0.1:8080", "[::1]:9090"} {
		dst := netip.MustParseAddrPort(s)
		got, err := Parse(Reply(dst))
		if err != nil || got != dst {
			t.Errorf("Parse(Reply(%s)) = %v, %v; want %v", dst, got, err, dst)
		}
	}
	for _, bad := range []string{"", "HTTP/1.0 200 OK", prefix + "nonsense"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = nil error; want an error", bad)
		}
	}
}

func TestIs(t *testing.T) {
	for s, want := range map[string]bool{"127.0.0.1:8080": true, "[::1]:8080": true, "10.1.2.3:8080": false, "[fd00::1]:80": false} {
		if got := Is(netip.MustParseAddrPort(s)); got != want {
			t.Errorf("Is(%s) = %v; want %v", s, got, want)
		}
	}
}
