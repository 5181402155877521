// Package circuit is a circuit breaker on requests in flight: over the
// maximum, the agent answers 503 at once (flag UO) instead of queueing onto
// an app that is already saturated, as Envoy's max_requests does.
//
//	circuitBreaker: {maxRequests: 100}
//
// A port has one breaker, shared by its routes unless a route sets its
// own, and it outlives reloads (pool.Pool): a reload that changes
// maxRequests changes the bound, not the count of requests in flight.
package circuit

import (
	"net/http"
	"sync/atomic"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Key is the block's key in an http section.
const Key = "circuitBreaker"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config limits the requests in flight to the app.
type Config struct {
	// MaxRequests is the most in flight; over it, 503 at once, flag UO.
	// At least 1; no default.
	MaxRequests int `yaml:"maxRequests" json:"maxRequests"`
}

func (c *Config) Provision() error {
	if c.MaxRequests < 1 {
		return config.Errorf("maxRequests", "%d must be at least 1", c.MaxRequests)
	}
	return nil
}

// Breaker counts requests in flight.
type Breaker struct {
	max      atomic.Int64
	inFlight atomic.Int64
}

// New allows at most max requests in flight.
func New(max int) *Breaker {
	b := &Breaker{}
	b.max.Store(int64(max))
	return b
}

// SetMax changes the bound; the requests in flight still count.
func (b *Breaker) SetMax(max int) { b.max.Store(int64(max)) }

// InFlight is how many requests are in flight.
func (b *Breaker) InFlight() int64 { return b.inFlight.Load() }

// Decoration is a breaker in a chain: the breaker of each request's port
// comes from get (pool.Pool keeps them by owner).
type Decoration struct{ get func(port uint16) *Breaker }

// For is the decoration of the breakers get gives.
func For(get func(port uint16) *Breaker) *Decoration { return &Decoration{get: get} }

// Name is the config key.
func (d *Decoration) Name() string { return Key }

// Request admits a request while fewer than the maximum are in flight.
func (d *Decoration) Request(x *exchange.Exchange) exchange.Verdict {
	b := d.get(x.Port)
	if b.inFlight.Add(1) > b.max.Load() {
		b.inFlight.Add(-1)
		return exchange.Verdict{Status: http.StatusServiceUnavailable, Flag: exchange.UpstreamOverflow,
			Why: "too many requests in flight to the app (circuit breaker)"}
	}
	return exchange.Verdict{}
}

// Done ends an admitted request.
func (d *Decoration) Done(x *exchange.Exchange) { d.get(x.Port).inFlight.Add(-1) }
