package forwarded

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestRequest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		client   string
		in       http.Header
		xff      string
		proto    string
		forwards string
	}{
		{"first hop", "10.0.0.7:5555", http.Header{}, "10.0.0.7", "http", "for=10.0.0.7;proto=http"},
		{"a client over IPv4 in IPv6", "[::ffff:10.0.0.8]:5555", http.Header{}, "10.0.0.8", "http", "for=10.0.0.8;proto=http"},
		{"after two hops, over IPv6", "[fd00::7]:5555",
			http.Header{"X-Forwarded-For": {"203.0.113.1", "198.51.100.2"}, "X-Forwarded-Proto": {"https"}},
			"203.0.113.1, 198.51.100.2, fd00::7", "https", `for="[fd00::7]";proto=http`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := &exchange.Exchange{Client: netip.MustParseAddrPort(tc.client), Request: tc.in}
			Forwarded{}.Request(x)
			h := tc.in
			if h.Get("X-Forwarded-For") != tc.xff || h.Get("X-Forwarded-Proto") != tc.proto || h.Get("Forwarded") != tc.forwards {
				t.Errorf("headers = %v; want X-Forwarded-For %q, X-Forwarded-Proto %q, Forwarded %q", h, tc.xff, tc.proto, tc.forwards)
			}
		})
	}
}

// The values are made in the exchange's scratch room: a second exchange on
// the same record allocates nothing, and the first one's strings are not
// changed by it until its Reset.
func TestScratchValues(t *testing.T) {
	x := &exchange.Exchange{Client: netip.MustParseAddrPort("10.0.0.7:1"), Request: http.Header{}}
	Forwarded{}.Request(x)
	first := x.Request.Get("Forwarded")
	x.Client = netip.MustParseAddrPort("10.0.0.9:1")
	h := http.Header{}
	x.Request = h
	Forwarded{}.Request(x)
	if first != "for=10.0.0.7;proto=http" || h.Get("Forwarded") != "for=10.0.0.9;proto=http" {
		t.Errorf("values %q and %q", first, h.Get("Forwarded"))
	}
	allocs := testing.AllocsPerRun(100, func() {
		x.Reset()
		x.Client = netip.MustParseAddrPort("10.0.0.9:1")
		clear(h)
		x.Request = h
		Forwarded{}.Request(x)
	})
	if allocs > 3 { // http.Header's own maps and slices; none for the values
		t.Errorf("%v allocations a request", allocs)
	}
}
