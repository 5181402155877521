package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

func TestTotalBurstAndRefill(t *testing.T) {
	l := New(config.RateLimit{RequestsPerSecond: 10, Burst: 3})
	now := int64(1_000_000_000_000)
	l.now = func() int64 { return now }
	c := netip.MustParseAddr("10.0.0.1")
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow(c); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.Allow(c)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("4th request = %v, retry after %v; want refused, 100ms", ok, wait)
	}
	now += int64(100 * time.Millisecond)
	if ok, _ := l.Allow(c); !ok {
		t.Error("a token did not come back after 100ms at 10/s")
	}
}

func TestPerClient(t *testing.T) {
	l := New(config.RateLimit{PerClient: &config.Bucket{RequestsPerSecond: 1, Burst: 1}})
	now := int64(1_000_000_000_000)
	l.now = func() int64 { return now }
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("first request from a refused")
	}
	if ok, _ := l.Allow(a); ok {
		t.Error("second request from a allowed; want its own bucket empty")
	}
	if ok, _ := l.Allow(b); !ok {
		t.Error("first request from b refused; b has a bucket of its own")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:10.0.0.1")); ok {
		t.Error("a's IPv4-mapped address got a fresh bucket")
	}
}

// Regression: a flood of source addresses must not grow memory unbounded.
func TestClientsBounded(t *testing.T) {
	l := New(config.RateLimit{PerClient: &config.Bucket{RequestsPerSecond: 1, Burst: 1}})
	now := int64(1_000_000_000_000)
	l.now = func() int64 { return now }
	for i := 0; i < shards*maxClients*3; i++ {
		b := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		l.Allow(netip.AddrFrom4(b))
	}
	total := 0
	for i := range l.clients {
		total += len(l.clients[i].m)
	}
	if total > shards*maxClients {
		t.Errorf("%d client buckets kept; want at most %d", total, shards*maxClients)
	}
}

func TestWrap429(t *testing.T) {
	l := New(config.RateLimit{RequestsPerSecond: 1, Burst: 1})
	reached := 0
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	var last *httptest.ResponseRecorder
	ex := &exchange.Exchange{Client: netip.MustParseAddrPort("10.0.0.1:1")}
	for i := 0; i < 2; i++ {
		last = httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		h.ServeHTTP(last, r.WithContext(exchange.With(r.Context(), ex)))
	}
	if last.Code != 429 || last.Header().Get("Retry-After") != "1" || reached != 1 || ex.Flags() != exchange.RateLimited {
		t.Errorf("over the limit: %d, Retry-After %q, reached %d, flags %v; want 429, 1, 1, RL",
			last.Code, last.Header().Get("Retry-After"), reached, ex.Flags())
	}
}
