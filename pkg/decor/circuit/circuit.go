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

	"github.com/veneermesh/veneer/pkg/exchange"
)

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

func (b *Breaker) Wrap(next http.Handler) http.Handler {
	return PerPort(func(uint16) *Breaker { return b })(next)
}

// PerPort wraps handlers with the breaker get gives for each request's
// port: for a section (the default, outbound) that serves many ports.
func PerPort(get func(port uint16) *Breaker) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := get(exchange.From(r.Context()).Port)
			if b.inFlight.Add(1) > b.max.Load() {
				b.inFlight.Add(-1)
				exchange.Reply(w, r, http.StatusServiceUnavailable, exchange.UpstreamOverflow, "too many requests in flight to the app (circuit breaker)")
				return
			}
			defer b.inFlight.Add(-1)
			next.ServeHTTP(w, r)
		})
	}
}
