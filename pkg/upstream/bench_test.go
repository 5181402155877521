package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRoundTrip is one GET and its 1 KiB response over a pooled
// loopback connection, with this Transport and with net/http's:
//
//	go test -bench RoundTrip -benchmem -count 10 ./pkg/upstream | benchstat -col /transport -
func BenchmarkRoundTrip(b *testing.B) {
	body := make([]byte, 1024)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer app.Close()
	std := &http.Transport{MaxIdleConnsPerHost: 64}
	defer std.CloseIdleConnections()
	own := New(new(net.Dialer).DialContext, 0, std)
	defer own.CloseIdle()
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"transport=net-http", std}, {"transport=upstream", own}} {
		b.Run(c.name, func(b *testing.B) {
			req, _ := http.NewRequest("GET", app.URL, nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
