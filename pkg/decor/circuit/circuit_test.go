package circuit

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestBreaker(t *testing.T) {
	b := New(2)
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	h := b.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) }()
	}
	<-entered
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("third request in flight = %d; want 503", rec.Code)
	}
	close(release)
	wg.Wait()
	go func() { <-entered }()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("request after the others finished = %d; want 200", rec.Code)
	}
}
