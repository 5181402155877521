package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestReady(t *testing.T) {
	a := New(prometheus.NewRegistry(), names)
	if code, _ := get(t, a, "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready before SetReady = %d; want 503", code)
	}
	a.SetReady(true)
	if code, _ := get(t, a, "/ready"); code != http.StatusOK {
		t.Errorf("/ready after SetReady(true) = %d; want 200", code)
	}
	a.SetReady(false)
	if code, _ := get(t, a, "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready while draining = %d; want 503", code)
	}
	if code, _ := get(t, a, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d; want 200", code)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "veneer_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	code, body := get(t, New(reg, names), "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "veneer_test_total 3") {
		t.Errorf("/metrics = %d %q; want 200 with veneer_test_total 3", code, body)
	}
}

func TestLocal(t *testing.T) {
	drained, stopping := 0, 0
	level := ""
	h := Local(func() { drained++ }, func() { stopping++ }, func(l string) error {
		if l != "debug" {
			return fmt.Errorf("level: %q is not a level", l)
		}
		level = l
		return nil
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/drain", nil))
	if rec.Code != 200 || drained != 1 {
		t.Errorf("POST /drain = %d, drained %d times", rec.Code, drained)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/drain", nil))
	if rec.Code != http.StatusMethodNotAllowed || drained != 1 {
		t.Errorf("GET /drain = %d; want 405 and no drain", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/prestop", nil))
	if rec.Code != 200 || stopping != 1 || drained != 1 {
		t.Errorf("POST /prestop = %d, preStop %d times, drained %d; want 200, once, and no drain", rec.Code, stopping, drained)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/log-level?level=loud", nil))
	if rec.Code != 400 {
		t.Errorf("PUT /log-level?level=loud = %d; want 400", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/log-level?level=debug", nil))
	if rec.Code != 200 || level != "debug" {
		t.Errorf("PUT /log-level?level=debug = %d, level %q", rec.Code, level)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != 200 {
		t.Errorf("GET /debug/pprof/ on the local handler = %d; want 200", rec.Code)
	}
	// The public handler has none of these.
	rec = httptest.NewRecorder()
	New(prometheus.NewRegistry(), names).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code == 200 {
		t.Error("the public admin handler serves profiles")
	}
	rec = httptest.NewRecorder()
	New(prometheus.NewRegistry(), names).ServeHTTP(rec, httptest.NewRequest("POST", "/drain", nil))
	if rec.Code == 200 {
		t.Error("the public admin handler drains")
	}
}
