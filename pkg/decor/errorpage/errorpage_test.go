package errorpage

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestPages(t *testing.T) {
	dir := t.TempDir()
	nf := filepath.Join(dir, "404.html")
	oops := filepath.Join(dir, "oops.txt")
	os.WriteFile(nf, []byte("<h1>not here</h1>"), 0o644)
	os.WriteFile(oops, []byte("oops"), 0o644)
	p, err := New(Config{Pages: map[string]string{"404": nf, "5xx": oops}})
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
		x := &exchange.Exchange{Status: tc.status, Response: http.Header{"Content-Type": {"text/x-app"}}}
		p.Response(x)
		body, ct := "app body", x.Response.Get("Content-Type")
		if rct, rbody, ok := x.Replacement(); ok {
			body, ct = string(rbody), rct
		}
		if body != tc.body || ct != tc.ct {
			t.Errorf("status %d: got %q (%s); want %q (%s)", tc.status, body, ct, tc.body, tc.ct)
		}
	}
	if _, err := New(Config{Pages: map[string]string{"404": filepath.Join(dir, "missing.html")}}); err == nil {
		t.Error("New with a missing page = nil error; want one naming it")
	}
}
