package tap

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func exchangeOf(path string, status int, f exchange.Flag) *exchange.Exchange {
	x := &exchange.Exchange{Start: time.Now(), Direction: "inbound", Port: 8080, Method: "GET", Path: path, Host: "shop",
		Client: netip.MustParseAddrPort("10.0.0.9:4242"), Status: status,
		Request:  http.Header{"Authorization": {"Bearer s3cret"}, "Cookie": {"id=c00kie"}, "Accept": {"*/*"}},
		Response: http.Header{"Set-Cookie": {"id=n3w"}, "Content-Type": {"text/html"}}}
	x.AddFlag(f)
	return x
}

func TestParseFilter(t *testing.T) {
	for _, tc := range []struct {
		query string
		err   string
	}{
		{"", ""},
		{"path=/api&status=5xx&flag=UF", ""},
		{"status=404&flag=-", ""},
		{"status=5XX", ""},
		{"status=6xx", `status: "6xx" is not a status code (404) or class (5xx)`},
		{"status=20", `status: "20" is not a status code`},
		{"status=2x1", `status: "2x1" is not a status code`},
		{"flag=XX", `flag: "XX" is not a response flag (UF, UT,`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := http.NewRequest("GET", "/tap?"+tc.query, nil)
			_, err := ParseFilter(q.URL.Query())
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)) {
				t.Errorf("ParseFilter(%s) = %v; want %q", tc.query, err, tc.err)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	for _, tc := range []struct {
		query string
		x     *exchange.Exchange
		want  bool
	}{
		{"", exchangeOf("/", 200, 0), true},
		{"path=/api", exchangeOf("/api/v1", 200, 0), true},
		{"path=/api", exchangeOf("/ap", 200, 0), false},
		{"status=5xx", exchangeOf("/", 503, 0), true},
		{"status=5xx", exchangeOf("/", 404, 0), false},
		{"status=404", exchangeOf("/", 404, 0), true},
		{"status=404", exchangeOf("/", 403, 0), false},
		{"flag=FI", exchangeOf("/", 503, exchange.FaultAbort), true},
		{"flag=FI", exchangeOf("/", 503, exchange.UpstreamFailure), false},
		{"flag=-", exchangeOf("/", 200, 0), true},
		{"flag=-", exchangeOf("/", 503, exchange.FaultAbort), false},
	} {
		q, _ := http.NewRequest("GET", "/tap?"+tc.query, nil)
		f, err := ParseFilter(q.URL.Query())
		if err != nil {
			t.Fatal(err)
		}
		if got := f.match(tc.x); got != tc.want {
			t.Errorf("%q matches %s %d %s: %v; want %v", tc.query, tc.x.Path, tc.x.Status, tc.x.Flags(), got, tc.want)
		}
	}
}

// Nobody watching: Done is a load, nothing is copied.
func TestDoneUnwatchedAllocatesNothing(t *testing.T) {
	tp := New()
	x := exchangeOf("/", 200, 0)
	if n := testing.AllocsPerRun(100, func() { tp.Done(x) }); n != 0 {
		t.Errorf("Done with no watcher: %.0f allocations; want 0", n)
	}
}

// A watcher sees the exchanges its filter matches, with credentials
// redacted, at most PerSecond of them; the rest are counted as skipped.
func TestWatchRedactsAndBounds(t *testing.T) {
	tp := New()
	f, _ := ParseFilter(map[string][]string{"status": {"5xx"}})
	w, stop, err := tp.watch(f)
	if err != nil {
		t.Fatal(err)
	}
	tp.Done(exchangeOf("/ok", 200, 0))
	tp.Done(exchangeOf("/boom", 503, exchange.FaultAbort))
	ev := <-w.events
	if ev.Path != "/boom" || ev.Flags != "FI" || ev.Peer != "10.0.0.9:4242" || ev.Authority != "shop" {
		t.Errorf("event %+v; want /boom, FI, from 10.0.0.9:4242 to shop", ev)
	}
	b, _ := json.Marshal(ev)
	for _, secret := range []string{"s3cret", "c00kie", "n3w"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("event %s carries %q", b, secret)
		}
	}
	if !strings.Contains(string(b), `["Authorization","[redacted]"]`) || !strings.Contains(string(b), `["Set-Cookie","[redacted]"]`) ||
		!strings.Contains(string(b), `["Accept","*/*"]`) {
		t.Errorf("event %s: want redacted credentials and the other headers as they are", b)
	}
	for range PerSecond + 10 {
		tp.Done(exchangeOf("/boom", 500, 0))
	}
	if got := len(w.events); got != PerSecond-1 {
		t.Errorf("%d events queued; want the rest of the budget, %d", got, PerSecond-1)
	}
	// What is past the budget, or past the queue, is skipped.
	if got, want := w.skipped.Load(), int64(PerSecond+10-(PerSecond-1)); got != want {
		t.Errorf("skipped %d; want %d", got, want)
	}
	stop()
	if tp.watching() != 0 {
		t.Errorf("%d watchers after stop; want 0", tp.watching())
	}
}

func TestMaxWatchers(t *testing.T) {
	tp := New()
	var stops []func()
	for range MaxWatchers {
		_, stop, err := tp.watch(Filter{})
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	if _, _, err := tp.watch(Filter{}); err == nil {
		t.Errorf("watcher %d admitted; want an error", MaxWatchers+1)
	}
	stops[3]()
	if _, _, err := tp.watch(Filter{}); err != nil {
		t.Errorf("after one stopped: %v", err)
	}
}

// The stream over HTTP: a request event, then the second's status.
func TestServeHTTP(t *testing.T) {
	tp := New()
	srv := httptest.NewServer(tp)
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "?flag=nope"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad filter: %v %v; want 400", resp.StatusCode, err)
	}
	resp, err := http.Get(srv.URL + "?path=/watched")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	for tp.watching() == 0 {
		time.Sleep(time.Millisecond)
	}
	tp.Done(exchangeOf("/other", 200, 0))
	tp.Done(exchangeOf("/watched", 200, 0))
	r := bufio.NewReader(resp.Body)
	var lines []string
	for len(lines) < 4 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l != "\n" {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if lines[0] != "event: request" || !strings.Contains(lines[1], `"path":"/watched"`) || lines[2] != "event: status" || lines[3] != `data: {"skipped":0}` {
		t.Errorf("stream %q; want the watched request, then a status", lines)
	}
}
