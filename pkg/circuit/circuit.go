// Package circuit is a circuit breaker on requests in flight: over the
// maximum, the agent answers 503 at once (flag UO) instead of queueing onto
// an app that is already saturated, as Envoy's max_requests does.
//
//	circuitBreaker: {maxRequests: 100}
package circuit

import (
	"net/http"
	"sync/atomic"

	"github.com/veneermesh/veneer/pkg/exchange"
)

// Breaker counts requests in flight.
type Breaker struct {
	max      int64
	inFlight atomic.Int64
}

// New allows at most max requests in flight.
func New(max int) *Breaker { return &Breaker{max: int64(max)} }

func (b *Breaker) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.inFlight.Add(1) > b.max {
			b.inFlight.Add(-1)
			exchange.Reply(w, r, http.StatusServiceUnavailable, exchange.UpstreamOverflow, "too many requests in flight to the app (circuit breaker)")
			return
		}
		defer b.inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}
