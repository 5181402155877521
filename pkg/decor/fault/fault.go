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

// Name is the config key.
func (f *Fault) Name() string { return "fault" }

// Request rolls for a delay, then for an abort.
func (f *Fault) Request(x *exchange.Exchange) exchange.Verdict {
	var v exchange.Verdict
	if f.delayPercent > 0 && f.roll() < f.delayPercent {
		x.AddFlag(exchange.FaultDelay)
		v.Delay = f.delay
	}
	if f.abortPercent > 0 && f.roll() < f.abortPercent {
		v.Status, v.Flag, v.Why = f.abortStatus, exchange.FaultAbort, "fault injected"
	}
	return v
}
