package requestid

import (
	"encoding/hex"
	"net/http"
	"regexp"
	"testing"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// run passes a request with header in through d's hooks; it returns what
// the app would see and the response header the client would.
func run(d *IDs, in http.Header) (seen http.Header, out http.Header) {
	if in == nil {
		in = http.Header{}
	}
	x := &exchange.Exchange{Request: in, Response: http.Header{}}
	d.Request(x)
	d.Response(x)
	return x.Request.(http.Header), x.Response.(http.Header)
}

func TestRequestID(t *testing.T) {
	seen, out := run(New(true, false), nil)
	id := seen.Get(HeaderRequestID)
	if !uuidRE.MatchString(id) || out.Get(HeaderRequestID) != id {
		t.Errorf("new id %q (echoed %q); want a v4 UUID sent to the app and back to the client", id, out.Get(HeaderRequestID))
	}
	seen, _ = run(New(true, false), http.Header{HeaderRequestID: {"abc-123"}})
	if seen.Get(HeaderRequestID) != "abc-123" {
		t.Errorf("existing id replaced with %q; want it kept", seen.Get(HeaderRequestID))
	}
	if seen, _ = run(New(false, false), nil); seen.Get(HeaderRequestID) != "" {
		t.Error("request id added while off")
	}
}

func TestTraceparent(t *testing.T) {
	tp := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	seen, _ := run(New(false, true), http.Header{
		HeaderTraceparent: {in}, "Tracestate": {"congo=t61rcWkgMzE"}, "X-B3-Traceid": {"80f198ee56343ba864fe8b2a57d3eff7"},
	})
	m := tp.FindStringSubmatch(seen.Get(HeaderTraceparent))
	if m == nil || m[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || m[2] == "00f067aa0ba902b7" || m[3] != "01" {
		t.Errorf("continued traceparent %q; want the same trace id and flags, a new span id", seen.Get(HeaderTraceparent))
	}
	if seen.Get("Tracestate") != "congo=t61rcWkgMzE" || seen.Get("X-B3-Traceid") != "80f198ee56343ba864fe8b2a57d3eff7" {
		t.Errorf("tracestate or B3 changed: %v", seen)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		seen, _ := run(New(false, true), http.Header{HeaderTraceparent: {bad}})
		if m := tp.FindStringSubmatch(seen.Get(HeaderTraceparent)); m == nil || m[1] == "00000000000000000000000000000000" {
			t.Errorf("traceparent %q: sent on %q; want a new valid trace", bad, seen.Get(HeaderTraceparent))
		}
	}
}

type spans struct {
	sample   bool
	exported []*exchange.Exchange
}

func (s *spans) Sample([16]byte) bool        { return s.sample }
func (s *spans) Export(x *exchange.Exchange) { s.exported = append(s.exported, x) }

// With spans to export, a new trace is sampled as the exporter says and a
// continued one as its flag says; only sampled requests are exported, with
// the ids the app saw.
func TestTracedSampling(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		sample    bool
		wantFlags string
	}{
		{"new, sampled", "", true, "01"},
		{"new, not sampled", "", false, "00"},
		{"continued, sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, "01"},
		{"continued, not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, "00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &spans{sample: tc.sample}
			d := NewTraced(false, sp)
			x := &exchange.Exchange{Request: http.Header{}, Response: http.Header{}}
			if tc.in != "" {
				x.Request.Set(HeaderTraceparent, tc.in)
			}
			d.Request(x)
			d.Done(x)
			sent := x.Request.Get(HeaderTraceparent)
			if sent[53:] != tc.wantFlags {
				t.Errorf("sent %s; want flags %s", sent, tc.wantFlags)
			}
			if got := string(AppendTraceparent(nil, &x.Trace)); got != sent {
				t.Errorf("the exchange's trace %s; the app saw %s", got, sent)
			}
			if tc.in != "" && (TraceID(sent) != TraceID(tc.in) || hex.EncodeToString(x.Trace.Parent[:]) != tc.in[36:52]) {
				t.Errorf("continued %s as %s, parent %x; want the same trace, the client's span as parent", tc.in, sent, x.Trace.Parent)
			}
			if want := tc.wantFlags == "01"; (len(sp.exported) == 1) != want {
				t.Errorf("%d exported; want sampled %v", len(sp.exported), want)
			}
		})
	}
}
