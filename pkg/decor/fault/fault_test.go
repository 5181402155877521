package fault

import (
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func serve(f *Fault) (exchange.Verdict, *exchange.Exchange) {
	ex := &exchange.Exchange{}
	return f.Request(ex), ex
}

func TestAbort(t *testing.T) {
	f := New(Config{Abort: &Abort{Status: 503, Percent: 30}})
	f.roll = func() float64 { return 29.9 }
	if v, _ := serve(f); v.Status != 503 || v.Flag != exchange.FaultAbort || v.Delay != 0 {
		t.Errorf("roll under the percentage: %+v; want 503 FI, no delay", v)
	}
	f.roll = func() float64 { return 30 }
	if v, ex := serve(f); v != (exchange.Verdict{}) || ex.Flags() != 0 {
		t.Errorf("roll at the percentage: %+v, flags %v; want the request to go on", v, ex.Flags())
	}
}

func TestDelay(t *testing.T) {
	f := New(Config{Delay: &Delay{Fixed: config.Duration(20 * time.Millisecond), Percent: 100},
		Abort: &Abort{Status: 500, Percent: 100}})
	v, ex := serve(f)
	if v.Delay != 20*time.Millisecond || v.Status != 500 || ex.Flags() != exchange.FaultDelay {
		t.Errorf("delay and abort: %+v, flags %v; want a 20ms delay, then 500 FI, flag DI recorded", v, ex.Flags())
	}
}

func TestPercentages(t *testing.T) {
	f := New(Config{Abort: &Abort{Status: 500, Percent: 25}})
	aborted := 0
	const n = 4000
	for i := 0; i < n; i++ {
		if v, _ := serve(f); v.Status == 500 {
			aborted++
		}
	}
	// 25% of 4000 is 1000; 6 standard deviations is about +-164.
	if aborted < 836 || aborted > 1164 {
		t.Errorf("aborted %d of %d; want about 25%%", aborted, n)
	}
}
