package stats

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	s := New(10)
	for i := 0; i < 100; i++ {
		s.Observe("/index.html", 200, time.Duration(i+1)*time.Millisecond, 100)
	}
	s.Observe("/missing", 404, time.Millisecond, 10)
	s.Observe("/app.css", 200, time.Millisecond, 10)
	r := s.Report()
	if len(r) != 3 || r[0].Path != "/index.html" || r[0].Count != 100 || r[0].Bytes != 10000 || r[0].Statuses["200"] != 100 {
		t.Fatalf("report = %+v", r)
	}
	// p50 of 1..100ms is 50ms, p99 99ms; buckets are 25% wide.
	if p := r[0].P50ms; p < 50 || p > 50*1.25 {
		t.Errorf("p50 = %vms; want 50ms within a bucket", p)
	}
	if p := r[0].P99ms; p < 99 || p > 99*1.25 {
		t.Errorf("p99 = %vms; want 99ms within a bucket", p)
	}
	for _, p := range r {
		if p.Static != (p.Path == "/app.css") {
			t.Errorf("%s static_asset = %v", p.Path, p.Static)
		}
	}
}

// Regression: random paths must not grow memory without limit.
func TestBounded(t *testing.T) {
	s := New(5)
	for i := 0; i < 1000; i++ {
		s.Observe(fmt.Sprintf("/random/%d", i), 404, time.Millisecond, 0)
	}
	r := s.Report()
	if len(r) != 6 {
		t.Fatalf("%d paths tracked; want 5 and %q", len(r), Other)
	}
	if r[0].Path != Other || r[0].Count != 995 {
		t.Errorf("first entry = %+v; want %q with the 995 paths past the bound", r[0], Other)
	}
}

// Requests for one path are counted from many goroutines at once, without
// a lock: nothing is lost.
func TestConcurrentObserve(t *testing.T) {
	s := New(10)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Observe("/hot", 200+300*(i%2), time.Millisecond, 10)
			}
		}()
	}
	wg.Wait()
	r := s.Report()
	if len(r) != 1 || r[0].Count != 8000 || r[0].Statuses["200"] != 4000 || r[0].Statuses["500"] != 4000 || r[0].Bytes != 80000 {
		t.Errorf("report %+v; want 8000 requests, 4000 each of 200 and 500, 80000 bytes", r)
	}
}
