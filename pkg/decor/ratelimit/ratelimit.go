// Package ratelimit is a local rate limit: a token bucket for all requests
// to a port (or route) and one per client IP. Over it, the agent answers 429
// with Retry-After (flag RL) and the app never sees the request.
//
//	rateLimit:
//	  requestsPerSecond: 100   # all clients together
//	  burst: 200
//	  perClient: {requestsPerSecond: 10, burst: 20}
//
// A port has one limiter, shared by its routes unless a route sets its own
// (then that route has one of its own), and it outlives reloads that leave
// it unchanged (pool.Pool), so a reload neither refills the buckets nor
// lets a route's traffic escape the port's limit.
//
// Each bucket is one atomic word (GCRA: the theoretical arrival time of the
// next request), so the total limit takes no lock.
package ratelimit

import (
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Key is the block's key in an http section.
const Key = "rateLimit"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config is a token bucket for all clients together, one per client IP,
// or both.
type Config struct {
	// RequestsPerSecond is the total rate, for all clients together; 0: no
	// total limit (then PerClient must be set).
	RequestsPerSecond float64 `yaml:"requestsPerSecond" json:"requestsPerSecond"`
	// Burst is how many requests may come at once; 0 means
	// RequestsPerSecond rounded up, at least 1.
	Burst int `yaml:"burst" json:"burst"`
	// PerClient is a bucket for each client IP; nil: none.
	PerClient *Bucket `yaml:"perClient" json:"perClient,omitempty"`
}

// Bucket is one token bucket.
type Bucket struct {
	RequestsPerSecond float64 `yaml:"requestsPerSecond" json:"requestsPerSecond"` // more than 0
	Burst             int     `yaml:"burst" json:"burst"`                         // 0 means requestsPerSecond rounded up, at least 1
}

func (c *Config) Provision() error {
	if c.RequestsPerSecond < 0 || c.Burst < 0 {
		return config.Errorf("", "requestsPerSecond and burst must not be negative")
	}
	if pc := c.PerClient; pc != nil {
		if pc.RequestsPerSecond <= 0 || pc.Burst < 0 {
			return config.Errorf("perClient.requestsPerSecond", "%v must be positive", pc.RequestsPerSecond)
		}
		pc.Burst = burst(pc.RequestsPerSecond, pc.Burst)
	}
	if c.RequestsPerSecond == 0 && c.PerClient == nil {
		return config.Errorf("", "set requestsPerSecond, perClient or both")
	}
	if c.RequestsPerSecond > 0 {
		c.Burst = burst(c.RequestsPerSecond, c.Burst)
	}
	return nil
}

// burst is b, or the default for rps.
func burst(rps float64, b int) int {
	if b < 1 {
		return max(1, int(math.Ceil(rps)))
	}
	return b
}

// bucket is a GCRA token bucket.
type bucket struct {
	tat      atomic.Int64 // theoretical arrival time, Unix nanoseconds
	interval int64        // nanoseconds per token
	tau      int64        // burst tolerance: (burst-1) * interval
}

func newBucket(rps float64, b int) *bucket {
	b = burst(rps, b)
	iv := int64(float64(time.Second) / rps)
	return &bucket{interval: iv, tau: int64(b-1) * iv}
}

// take reports whether a request at now fits, and if not, when to retry.
func (b *bucket) take(now int64) (bool, time.Duration) {
	for {
		old := b.tat.Load()
		tat := max(old, now)
		if tat-now > b.tau {
			return false, time.Duration(tat - now - b.tau)
		}
		if b.tat.CompareAndSwap(old, tat+b.interval) {
			return true, 0
		}
	}
}

// full reports whether the bucket is back to its full burst: forgetting it
// loses nothing.
func (b *bucket) full(now int64) bool { return b.tat.Load() <= now }

// maxClients bounds the per-client buckets kept per shard, so a flood of
// source addresses cannot grow memory without limit.
const (
	shards     = 32
	maxClients = 1024
)

type shard struct {
	mu sync.Mutex
	m  map[netip.Addr]*bucket
}

// Limiter is a compiled rateLimit section.
type Limiter struct {
	total     *bucket // nil: no total limit
	rps       float64 // per client
	burst     int
	perClient bool
	seed      maphash.Seed
	clients   [shards]shard
	now       func() int64
}

// New compiles cfg, which Provision has checked.
func New(cfg Config) *Limiter {
	l := &Limiter{seed: maphash.MakeSeed(), now: func() int64 { return time.Now().UnixNano() }}
	if cfg.RequestsPerSecond > 0 {
		l.total = newBucket(cfg.RequestsPerSecond, cfg.Burst)
	}
	if pc := cfg.PerClient; pc != nil {
		l.perClient, l.rps, l.burst = true, pc.RequestsPerSecond, pc.Burst
		for i := range l.clients {
			l.clients[i].m = map[netip.Addr]*bucket{}
		}
	}
	return l
}

// Allow reports whether a request from client fits, and if not, when to retry.
func (l *Limiter) Allow(client netip.Addr) (bool, time.Duration) {
	now := l.now()
	if l.perClient {
		if ok, wait := l.client(client.Unmap(), now).take(now); !ok {
			return false, wait
		}
	}
	if l.total != nil {
		return l.total.take(now)
	}
	return true, 0
}

func (l *Limiter) client(a netip.Addr, now int64) *bucket {
	b16 := a.As16()
	s := &l.clients[maphash.Bytes(l.seed, b16[:])%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[a]; ok {
		return b
	}
	if len(s.m) >= maxClients {
		// Look at a few entries (map order is random) and forget the full
		// ones: bounded work per request, whatever the flood.
		seen := 0
		for k, b := range s.m {
			if b.full(now) {
				delete(s.m, k)
			}
			if seen++; seen == 16 {
				break
			}
		}
	}
	b := newBucket(l.rps, l.burst)
	if len(s.m) < maxClients {
		s.m[a] = b
	}
	// Else: a fresh bucket not kept; the total limit still holds.
	return b
}

// Decoration is a rate limit in a chain: the limiter of each request's
// port comes from get (pool.Pool keeps them by owner).
type Decoration struct{ get func(port uint16) *Limiter }

// For is the decoration of the limiters get gives.
func For(get func(port uint16) *Limiter) *Decoration { return &Decoration{get: get} }

// Name is the config key.
func (d *Decoration) Name() string { return Key }

// Request answers 429 for a request over the limit.
func (d *Decoration) Request(x *exchange.Exchange) exchange.Verdict {
	ok, wait := d.get(x.Port).Allow(x.Client.Addr())
	if ok {
		return exchange.Verdict{}
	}
	return exchange.Verdict{Status: http.StatusTooManyRequests, Flag: exchange.RateLimited, Why: "local rate limit exceeded",
		RetryAfter: int(math.Ceil(wait.Seconds()))}
}
