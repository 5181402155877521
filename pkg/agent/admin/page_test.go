package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/datapath/proxy"
	"github.com/veneermesh/veneer/pkg/decor/metrics"
)

// The page and its files are served from the binary, the chart library's
// licence with them, under a policy that loads nothing from elsewhere.

// names are the agent's, as the agent gives them.
var names = Names{Requests: metrics.RequestsName, Duration: metrics.DurationName,
	RequestSize: metrics.RequestSizeName, ResponseSize: metrics.ResponseSizeName, Active: proxy.ActiveName}

func TestPage(t *testing.T) {
	a := New(prometheus.NewRegistry(), names)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<script src="ui/app.js">`) {
		t.Errorf("GET / = %d %.80q; want the page", rec.Code, rec.Body.String())
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q; want default-src 'self'", csp)
	}
	for _, f := range []string{"/ui/app.js", "/ui/style.css", "/ui/vendor/uplot/uPlot.iife.min.js", "/ui/vendor/uplot/LICENSE"} {
		if code, body := get(t, a, f); code != 200 || len(body) == 0 {
			t.Errorf("GET %s = %d, %d bytes", f, code, len(body))
		}
	}
	if code, _ := get(t, a, "/nothing-here"); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %d; want 404", code)
	}
	code, body := get(t, a, "/version")
	var v Build
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("GET /version = %d %s (%v); want the build", code, body, err)
	}
}

// The page's flag list is the exchange's.
func TestPageFlags(t *testing.T) {
	b, err := os.ReadFile("ui/app.js")
	if err != nil {
		t.Fatal(err)
	}
	want := `const FLAGS = ["` + strings.Join(exchange.FlagNames(), `", "`) + `"];`
	if !strings.Contains(string(b), want) {
		t.Errorf("app.js lacks %s", want)
	}
}

// A Point is the metrics' sums: totals, rates over the interval, and
// latency quantiles of the interval's observations only.
func TestPoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: proxy.ActiveName, Help: "as proxy's"}, []string{"direction", "port"})
	reg.MustRegister(active)
	active.WithLabelValues("inbound", "8080").Set(1)
	active.WithLabelValues("outbound", "80").Set(1)
	done := func(port uint16, status int, took time.Duration, f exchange.Flag) {
		x := &exchange.Exchange{Start: time.Now().Add(-took), Port: port, Method: "GET", Status: status, Sent: 100,
			Client: netip.MustParseAddrPort("10.0.0.1:1")}
		x.AddFlag(f)
		m.Done(x)
	}
	for range 10 {
		done(8080, 200, 30*time.Second, 0) // before the interval: slow, and ignored by its quantiles
	}
	t0 := time.Now()
	first, err := read(reg, names, t0)
	if err != nil {
		t.Fatal(err)
	}
	if p := first.point(nil); p.RequestsTotal != 10 || p.RPS != nil || p.Active != 2 {
		t.Errorf("first point %+v; want 10 requests, 2 connections, no rates", p)
	}
	for range 98 {
		done(8080, 200, 200*time.Microsecond, 0)
	}
	done(9090, 503, 2*time.Millisecond, exchange.FaultAbort)
	done(9090, 503, 2*time.Millisecond, exchange.FaultAbort)
	next, _ := read(reg, names, t0.Add(2*time.Second))
	p := next.point(&first)
	if p.RequestsTotal != 110 || *p.RPS != 50 {
		t.Errorf("requests %v, %v/s; want 110, 50/s", p.RequestsTotal, *p.RPS)
	}
	if p.Classes["2xx"] != 49 || p.Classes["5xx"] != 1 || p.Flags["FI"] != 1 || len(p.Flags) != 1 {
		t.Errorf("classes %v, flags %v; want 49 2xx/s, 1 5xx/s, 1 FI/s only", p.Classes, p.Flags)
	}
	if *p.OutBps != 50*100 {
		t.Errorf("out %v B/s; want 5000", *p.OutBps)
	}
	// 98 of 100 in the 100-250us bucket, 2 in 1-2.5ms.
	if *p.P50 < 0.1 || *p.P50 > 0.25 || *p.P99 < 1 || *p.P99 > 2.5 {
		t.Errorf("p50 %.3f ms, p99 %.3f ms; want within 0.1-0.25 and 1-2.5", *p.P50, *p.P99)
	}
	same, _ := read(reg, names, t0.Add(3*time.Second))
	if q := same.point(&next); q.P50 != nil || *q.RPS != 0 {
		t.Errorf("a second without requests: p50 %v, %v/s; want none, 0", q.P50, *q.RPS)
	}
}

// /live sends a point at once and then each second; nothing is gathered
// for a page that is gone.
func TestLive(t *testing.T) {
	reg := prometheus.NewRegistry()
	var gathered atomic.Int32
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { gathered.Add(1); return reg.Gather() })
	srv := httptest.NewServer(New(g, names))
	defer srv.Close()
	time.Sleep(1100 * time.Millisecond)
	if n := gathered.Load(); n != 0 {
		t.Errorf("%d gathers with nobody watching; want 0", n)
	}
	resp, err := http.Get(srv.URL + "/live")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	var events []string
	for len(events) < 2 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "data: ") {
			events = append(events, l)
		}
	}
	if !strings.Contains(events[0], `"requests_total":0`) || strings.Contains(events[0], "rps") || !strings.Contains(events[1], `"rps":0`) {
		t.Errorf("events %q; want totals, then rates", events)
	}
	resp.Body.Close()
	time.Sleep(200 * time.Millisecond) // the handler sees the client gone at its next write
	n := gathered.Load()
	time.Sleep(2100 * time.Millisecond)
	if m := gathered.Load(); m > n+1 {
		t.Errorf("%d gathers after the page went; want at most the one under way", m-n)
	}
}

// The tap's guard: the pod's loopback (kubectl port-forward) only.
func TestLoopbackOnly(t *testing.T) {
	h := LoopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("tapped")) }))
	for addr, want := range map[string]int{"127.0.0.1:5000": 200, "[::1]:5000": 200, "[::ffff:127.0.0.1]:5000": 200,
		"10.213.0.1:5000": 403, "[fd00::1]:5000": 403, "junk": 403} {
		req := httptest.NewRequest("GET", "/tap", nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("from %s: %d; want %d", addr, rec.Code, want)
		}
	}
}
