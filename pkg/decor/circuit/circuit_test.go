package circuit

import (
	"net/http"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestBreaker(t *testing.T) {
	b := New(2)
	d := For(func(uint16) *Breaker { return b })
	x := &exchange.Exchange{}
	for i := range 2 {
		if v := d.Request(x); v.Status != 0 {
			t.Fatalf("request %d of 2 in flight: %d; want admitted", i+1, v.Status)
		}
	}
	if v := d.Request(x); v.Status != http.StatusServiceUnavailable || v.Flag != exchange.UpstreamOverflow {
		t.Errorf("a third in flight: %d %v; want 503 UO", v.Status, v.Flag)
	}
	if b.InFlight() != 2 {
		t.Errorf("in flight after a refusal: %d; want 2 (the refused one not counted)", b.InFlight())
	}
	d.Done(x)
	if v := d.Request(x); v.Status != 0 {
		t.Errorf("after one ended: %d; want admitted", v.Status)
	}
	b.SetMax(3)
	if v := d.Request(x); v.Status != 0 || b.InFlight() != 3 {
		t.Errorf("under a new maximum of 3: %d with %d in flight; want admitted, 3", v.Status, b.InFlight())
	}
}
