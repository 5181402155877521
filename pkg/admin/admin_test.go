package admin

import (
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
	a := New(prometheus.NewRegistry())
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
	code, body := get(t, New(reg), "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "veneer_test_total 3") {
		t.Errorf("/metrics = %d %q; want 200 with veneer_test_total 3", code, body)
	}
}
