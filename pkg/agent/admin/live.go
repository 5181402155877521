package admin

import (
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/veneermesh/veneer/pkg/agent/sse"
)

// maxLive bounds the pages watching the charts at once; more get 503.
const maxLive = 8

// Point is what the page's charts add each second, read from the metrics
// the agent exports (so that it agrees with /metrics): totals, and rates
// and latency quantiles over the second since the last point. Rates and
// quantiles are absent from the first point, and quantiles from a second
// without requests.
type Point struct {
	Time          int64              `json:"t"` // Unix milliseconds
	RequestsTotal float64            `json:"requests_total"`
	Active        float64            `json:"active_connections"`
	RPS           *float64           `json:"rps,omitempty"`
	Classes       map[string]float64 `json:"classes,omitempty"` // "2xx": responses a second
	Flags         map[string]float64 `json:"flags,omitempty"`   // "UF": responses a second
	InBps         *float64           `json:"in_bytes_per_s,omitempty"`
	OutBps        *float64           `json:"out_bytes_per_s,omitempty"`
	P50           *float64           `json:"p50_ms,omitempty"`
	P90           *float64           `json:"p90_ms,omitempty"`
	P99           *float64           `json:"p99_ms,omitempty"`
}

// totals are the figures a Point is made of, summed over every port and
// both directions.
type totals struct {
	at            time.Time
	requests      float64
	classes       map[string]float64
	flags         map[string]float64
	active        float64
	inB, outB     float64
	bounds, count []float64 // the latency histogram: upper bounds (s) and cumulative counts, +Inf last
}

// Names are the metrics the live charts read, by name: the HTTP metrics'
// (pkg/decor/metrics) and the gauge of open connections (pkg/datapath/proxy),
// which the agent names; the page depends on neither.
type Names struct {
	Requests, Duration, RequestSize, ResponseSize string // counters and histograms of requests
	Active                                        string // the gauge of open connections
}

func read(g prometheus.Gatherer, n Names, at time.Time) (totals, error) {
	mfs, err := g.Gather()
	t := totals{at: at, classes: map[string]float64{}, flags: map[string]float64{}}
	if err != nil {
		return t, err
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case n.Requests:
			for _, m := range mf.Metric {
				v := m.GetCounter().GetValue()
				t.requests += v
				code, flags := label(m, "code"), label(m, "flags")
				if len(code) == 3 {
					t.classes[code[:1]+"xx"] += v
				}
				if flags != "-" {
					t.flags[flags] += v
				}
			}
		case n.Duration:
			for _, m := range mf.Metric {
				h := m.GetHistogram()
				if t.bounds == nil {
					for _, b := range h.Bucket {
						t.bounds = append(t.bounds, b.GetUpperBound())
					}
					t.bounds = append(t.bounds, math.Inf(1))
					t.count = make([]float64, len(t.bounds))
				}
				for i, b := range h.Bucket {
					t.count[i] += float64(b.GetCumulativeCount())
				}
				t.count[len(t.count)-1] += float64(h.GetSampleCount())
			}
		case n.RequestSize:
			for _, m := range mf.Metric {
				t.inB += m.GetHistogram().GetSampleSum()
			}
		case n.ResponseSize:
			for _, m := range mf.Metric {
				t.outB += m.GetHistogram().GetSampleSum()
			}
		case n.Active:
			for _, m := range mf.Metric {
				t.active += m.GetGauge().GetValue()
			}
		}
	}
	return t, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// point is t as a Point, with rates since prev (nil for the first).
func (t totals) point(prev *totals) Point {
	p := Point{Time: t.at.UnixMilli(), RequestsTotal: t.requests, Active: t.active}
	if prev == nil {
		return p
	}
	dt := t.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return p
	}
	rate := func(now, then float64) *float64 { r := max(now-then, 0) / dt; return &r }
	p.RPS = rate(t.requests, prev.requests)
	p.InBps, p.OutBps = rate(t.inB, prev.inB), rate(t.outB, prev.outB)
	p.Classes, p.Flags = map[string]float64{}, map[string]float64{}
	for k, v := range t.classes {
		p.Classes[k] = *rate(v, prev.classes[k])
	}
	for k, v := range t.flags {
		p.Flags[k] = *rate(v, prev.flags[k])
	}
	if len(t.count) > 0 && len(prev.count) == len(t.count) {
		delta := make([]float64, len(t.count))
		for i := range delta {
			delta[i] = t.count[i] - prev.count[i]
		}
		p.P50, p.P90, p.P99 = quantile(t.bounds, delta, .5), quantile(t.bounds, delta, .9), quantile(t.bounds, delta, .99)
	}
	return p
}

// quantile is the q-quantile in milliseconds of a histogram's cumulative
// counts, interpolated within its bucket as Prometheus' histogram_quantile
// does; nil without observations. In the +Inf bucket it is the highest
// finite bound.
func quantile(bounds, cum []float64, q float64) *float64 {
	n := cum[len(cum)-1]
	if n <= 0 {
		return nil
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for i, c := range cum {
		if c >= rank {
			v := bounds[i]
			if math.IsInf(v, 1) {
				v = lower
			} else if c > below {
				v = lower + (v-lower)*(rank-below)/(c-below)
			}
			ms := v * 1000
			return &ms
		}
		lower, below = bounds[i], c
	}
	return nil
}

// live streams a Point a second as Server-Sent Events ("metrics") while
// the page is open; nothing is gathered while nobody watches.
func live(g prometheus.Gatherer, n Names) http.HandlerFunc {
	var watching atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if watching.Add(1) > maxLive {
			watching.Add(-1)
			http.Error(w, "live: "+strconv.Itoa(maxLive)+" pages watch already; try again later", http.StatusServiceUnavailable)
			return
		}
		defer watching.Add(-1)
		events := sse.Start(w)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var prev *totals
		for {
			t, err := read(g, n, time.Now())
			if err != nil {
				return
			}
			if events.Send("metrics", t.point(prev)) != nil {
				return
			}
			prev = &t
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}
}
