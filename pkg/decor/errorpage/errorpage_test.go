package errorpage

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/veneermesh/veneer/pkg/config"
)

func TestPages(t *testing.T) {
	dir := t.TempDir()
	nf := filepath.Join(dir, "404.html")
	oops := filepath.Join(dir, "oops.txt")
	os.WriteFile(nf, []byte("<h1>not here</h1>"), 0o644)
	os.WriteFile(oops, []byte("oops"), 0o644)
	p, err := New(config.ErrorPages{Pages: map[string]string{"404": nf, "5xx": oops}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status   int
		body, ct string
	}{
		{404, "<h1>not here</h1>", "text/html; charset=utf-8"},
		{503, "oops", "text/plain; charset=utf-8"},
		{200, "app body", "text/x-app"},
		{403, "app body", "text/x-app"},
	} {
		h := p.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/x-app")
			w.Header().Set("Content-Length", "8")
			w.WriteHeader(tc.status)
			w.Write([]byte("app body"))
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != tc.status || rec.Body.String() != tc.body || rec.Header().Get("Content-Type") != tc.ct {
			t.Errorf("status %d: got %d %q (%s); want %d %q (%s)", tc.status, rec.Code, rec.Body, rec.Header().Get("Content-Type"), tc.status, tc.body, tc.ct)
		}
	}
	if _, err := New(config.ErrorPages{Pages: map[string]string{"404": filepath.Join(dir, "missing.html")}}); err == nil {
		t.Error("New with a missing page = nil error; want one naming it")
	}
}
