package ratelimit

import (
	"net/netip"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestTotalBurstAndRefill(t *testing.T) {
	l := New(Config{RequestsPerSecond: 10, Burst: 3})
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
	l := New(Config{PerClient: &Bucket{RequestsPerSecond: 1, Burst: 1}})
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
	l := New(Config{PerClient: &Bucket{RequestsPerSecond: 1, Burst: 1}})
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

func TestRequest429(t *testing.T) {
	l := New(Config{RequestsPerSecond: 1, Burst: 1})
	d := For(func(uint16) *Limiter { return l })
	x := &exchange.Exchange{Client: netip.MustParseAddrPort("10.0.0.1:1")}
	if v := d.Request(x); v.Status != 0 {
		t.Fatalf("first request: %d; want admitted", v.Status)
	}
	if v := d.Request(x); v.Status != 429 || v.RetryAfter != 1 || v.Flag != exchange.RateLimited {
		t.Errorf("over the limit: %+v; want 429, Retry-After 1, RL", v)
	}
}
