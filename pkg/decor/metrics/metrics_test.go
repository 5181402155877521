package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "GET", "BREW"} {
		ex := &exchange.Exchange{Port: 8080, Method: method, Status: 429}
		ex.AddFlag(exchange.RateLimited)
		m.Done(ex)
	}
	mfs, _ := reg.Gather()
	var got []string
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if mf.GetName() == "veneer_requests_total" {
				got = append(got, fmt.Sprintf("%s %v", strings.Join(labels, ","), mt.GetCounter().GetValue()))
			}
			if mf.GetName() == "veneer_request_duration_seconds" && mt.GetHistogram().GetSampleCount() != 3 {
				t.Errorf("duration histogram count = %d; want 3", mt.GetHistogram().GetSampleCount())
			}
		}
	}
	want := "code=429,direction=inbound,flags=RL,method=GET,port=8080,tls=false 2|code=429,direction=inbound,flags=RL,method=OTHER,port=8080,tls=false 1"
	if strings.Join(got, "|") != want {
		t.Errorf("veneer_requests_total = %q; want %q (unknown methods as OTHER)", strings.Join(got, "|"), want)
	}
}
