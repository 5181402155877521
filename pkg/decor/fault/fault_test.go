package fault

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/config"
	"github.com/veneermesh/veneer/pkg/exchange"
)

func serve(f *Fault) (*httptest.ResponseRecorder, *exchange.Exchange, int) {
	reached := 0
	h := f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	ex := &exchange.Exchange{}
	r := httptest.NewRequest("GET", "/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.WithContext(exchange.With(r.Context(), ex)))
	return rec, ex, reached
}

func TestAbort(t *testing.T) {
	f := New(config.Fault{Abort: &config.Abort{Status: 503, Percent: 30}})
	f.roll = func() float64 { return 29.9 }
	rec, ex, reached := serve(f)
	if rec.Code != 503 || reached != 0 || ex.Flags() != exchange.FaultAbort {
		t.Errorf("roll under the percentage: %d, reached %d, flags %v; want 503, 0, FI", rec.Code, reached, ex.Flags())
	}
	f.roll = func() float64 { return 30 }
	if rec, ex, reached := serve(f); rec.Code != 200 || reached != 1 || ex.Flags() != 0 {
		t.Errorf("roll at the percentage: %d, reached %d, flags %v; want 200, 1, none", rec.Code, reached, ex.Flags())
	}
}

func TestDelay(t *testing.T) {
	f := New(config.Fault{Delay: &config.Delay{Fixed: config.Duration(20 * time.Millisecond), Percent: 100}})
	start := time.Now()
	_, ex, reached := serve(f)
	if reached != 1 || ex.Flags() != exchange.FaultDelay || time.Since(start) < 20*time.Millisecond {
		t.Errorf("delay: reached %d, flags %v after %v; want the app reached after the 20ms delay, flag DI", reached, ex.Flags(), time.Since(start))
	}
}

func TestPercentages(t *testing.T) {
	f := New(config.Fault{Abort: &config.Abort{Status: 500, Percent: 25}})
	aborted := 0
	const n = 4000
	for i := 0; i < n; i++ {
		if rec, _, _ := serve(f); rec.Code == 500 {
			aborted++
		}
	}
	// 25% of 4000 is 1000; 6 standard deviations is about +-164.
	if aborted < 836 || aborted > 1164 {
		t.Errorf("aborted %d of %d; want about 25%%", aborted, n)
	}
}
