package appprobe

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if r.Header.Get("X-Probe") != "yes" || r.Host != "app.local" {
				w.WriteHeader(400)
			}
		case "/moved":
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		default:
			w.WriteHeader(500)
		}
	}))
	defer app.Close()
	port := app.Listener.Addr().(*net.TCPAddr).Port
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	probes, err := Parse(fmt.Sprintf(`{
		"/app-health/web/readyz": {"httpGet": {"path": "/healthz", "port": %d, "host": "app.local", "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}},
		"/app-health/web/livez": {"tcpSocket": {"port": %d}},
		"/app-health/web/startupz": {"httpGet": {"path": "broken", "port": %d}},
		"/app-health/web/moved": {"httpGet": {"path": "/moved", "port": %d}},
		"/app-health/down/livez": {"tcpSocket": {"port": %d}},
		"/app-health/down/readyz": {"httpGet": {"port": %d}}
	}`, port, port, port, port, deadPort, deadPort))
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(probes)
	for path, want := range map[string]int{
		"/app-health/web/readyz":   200,
		"/app-health/web/livez":    200,
		"/app-health/web/startupz": 500, // the app's status
		"/app-health/web/moved":    302, // passes, as the kubelet counts a redirect to elsewhere
		"/app-health/down/livez":   503,
		"/app-health/down/readyz":  503,
		"/app-health/none/readyz":  404,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d %q, want %d", path, rec.Code, rec.Body, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		`[]`:                                 "not a JSON object",
		`{"/x": {"tcpSocket": {"port": 1}}}`: "starts with /app-health/",
		`{"/app-health/a/b": {}}`:            "one of them",
		`{"/app-health/a/b": {"httpGet": {"port": 0}}}`:                      "port 0 is not a port",
		`{"/app-health/a/b": {"httpGet": {"port": 80, "scheme": "GOPHER"}}}`: `scheme "GOPHER"`,
		`{"/app-health/a/b": {"tcpSocket": {"port": 70000}}}`:                "port 70000",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error saying %q", in, err, want)
		}
	}
}
