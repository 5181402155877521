// Package fault injects delays and aborts into a share of requests, as
// Istio's VirtualService fault does, to test how callers cope.
//
//	fault:
//	  delay: {fixed: 2s, percent: 10}    # flag DI
//	  abort: {status: 503, percent: 5}   # flag FI; the app never sees these
//
// A delay comes first; an aborted request may be delayed too.
package fault

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

// Fault is a compiled fault section.
type Fault struct {
	delay        time.Duration
	delayPercent float64
	abortStatus  int
	abortPercent float64
	roll         func() float64 // [0, 100); tests pin it
}

// New compiles cfg, which config.Parse has validated.
func New(cfg config.Fault) *Fault {
	f := &Fault{roll: func() float64 { return rand.Float64() * 100 }}
	if d := cfg.Delay; d != nil {
		f.delay, f.delayPercent = d.Fixed.D(), d.Percent
	}
	if a := cfg.Abort; a != nil {
		f.abortStatus, f.abortPercent = a.Status, a.Percent
	}
	return f
}

func (f *Fault) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.delayPercent > 0 && f.roll() < f.delayPercent {
			exchange.From(r.Context()).AddFlag(exchange.FaultDelay)
			t := time.NewTimer(f.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return // the client left
			}
		}
		if f.abortPercent > 0 && f.roll() < f.abortPercent {
			exchange.Reply(w, r, f.abortStatus, exchange.FaultAbort, "fault injected")
			return
		}
		next.ServeHTTP(w, r)
	})
}
