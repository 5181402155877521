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

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Key is the block's key in an http section.
const Key = "fault"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config injects delays and aborts, as Istio's VirtualService fault does.
type Config struct {
	Delay *Delay `yaml:"delay" json:"delay,omitempty"` // nil: no delay
	Abort *Abort `yaml:"abort" json:"abort,omitempty"` // nil: no abort
}

// Delay holds a share of requests before they go on.
type Delay struct {
	Fixed   config.Duration `yaml:"fixed" json:"fixed"`     // how long; must be set
	Percent float64         `yaml:"percent" json:"percent"` // of requests, 0-100; 0: none
}

// Abort answers a share of requests with a status instead of the app.
type Abort struct {
	Status  int     `yaml:"status" json:"status"`   // 200-599; must be set
	Percent float64 `yaml:"percent" json:"percent"` // of requests, 0-100; 0: none
}

func (c *Config) Provision() error {
	if d := c.Delay; d != nil {
		if err := config.Percent("delay.percent", d.Percent); err != nil {
			return err
		}
		if d.Fixed == 0 {
			return config.Errorf("delay.fixed", "a delay needs a duration (e.g. 100ms)")
		}
	}
	if a := c.Abort; a != nil {
		if err := config.Percent("abort.percent", a.Percent); err != nil {
			return err
		}
		if a.Status < 200 || a.Status > 599 {
			return config.Errorf("abort.status", "%d is not an HTTP status (200-599)", a.Status)
		}
	}
	return nil
}

// Fault is a compiled fault section.
type Fault struct {
	delay        time.Duration
	delayPercent float64
	abortStatus  int
	abortPercent float64
	roll         func() float64 // [0, 100); tests pin it
}

// New compiles cfg, which Provision has checked.
func New(cfg Config) *Fault {
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
func (f *Fault) Name() string { return Key }

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
