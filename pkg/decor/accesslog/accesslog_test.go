package accesslog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

func TestLine(t *testing.T) {
	var out bytes.Buffer
	ex := &exchange.Exchange{Start: time.Now(), Port: 8080,
		Client: netip.MustParseAddrPort("10.0.0.1:5555"), Upstream: netip.MustParseAddrPort("10.0.0.2:8080"),
		Method: "POST", Path: "/upload", Target: "/upload?x=1", Host: "app", Proto: "HTTP/1.1",
		UserAgent: "curl/8", ForwardedFor: "203.0.113.9",
		Request: http.Header{"X-Request-Id": {"rid-1"}, "X-Forwarded-For": {"changed on the way"}},
		Status:  200, Sent: 5}
	ex.SetUpstreamTime(1500 * time.Microsecond)
	New(Config{}, &out).Done(ex)
	// Nothing read the body: 0 bytes received.
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("access log %q: %v", out.String(), err)
	}
	want := map[string]any{
		"method": "POST", "path": "/upload?x=1", "protocol": "HTTP/1.1", "status": float64(200), "response_flags": "-",
		"bytes_received": float64(0), "bytes_sent": float64(5), "upstream_service_time_ms": 1.5,
		"x_forwarded_for": "203.0.113.9", "user_agent": "curl/8", "request_id": "rid-1", "authority": "app",
		"upstream_host": "10.0.0.2:8080", "client_address": "10.0.0.1:5555",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v; want %v", k, line[k], v)
		}
	}
	for _, k := range []string{"start_time", "duration_ms"} {
		if _, ok := line[k]; !ok {
			t.Errorf("line lacks %s", k)
		}
	}
}

// Whatever bytes a client puts in a header, the line is one line of valid
// JSON that reads back as encoding/json would have written it.
func TestLineEscapes(t *testing.T) {
	odd := []string{
		`quote " and backslash \ `, "tab\tcr\rlf\nnul\x00esc\x1b del\x7f", "é ü 日本 🙂",
		"not UTF-8: \xff\xfe and a cut \xe6\x97", "\u2028\u2029", "",
	}
	for c := 0; c < 256; c++ {
		odd = append(odd, string([]byte{'a', byte(c), 'z'}))
	}
	for _, ua := range odd {
		var out bytes.Buffer
		ex := &exchange.Exchange{Start: time.Now(), Method: "GET", Target: "/" + ua, Proto: "HTTP/1.1", UserAgent: ua,
			Request: http.Header{}, Client: netip.MustParseAddrPort("10.0.0.1:1"), Upstream: netip.MustParseAddrPort("[fd00::2]:80")}
		ex.SetFailure("reading: " + ua)
		New(Config{}, &out).Done(ex)
		line := out.Bytes()
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Errorf("user agent %q: %q is not one line", ua, line)
		}
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Errorf("user agent %q: %q is not JSON: %v", ua, line, err)
			continue
		}
		var want string // as encoding/json has it: each byte not UTF-8 a U+FFFD
		enc, _ := json.Marshal(ua)
		json.Unmarshal(enc, &want)
		if got["user_agent"] != want || got["path"] != "/"+want || got["upstream_failure"] != "reading: "+want {
			t.Errorf("user agent %q read back as %q, path %q; want %q", ua, got["user_agent"], got["path"], want)
		}
		if got["upstream_host"] != "[fd00::2]:80" || got["upstream_service_time_ms"] != "-" {
			t.Errorf("upstream %v, time %v", got["upstream_host"], got["upstream_service_time_ms"])
		}
	}
}

// A block's fields are the line's, in its order, then the header fields in
// theirs; a header the message lacks is "".
func TestFields(t *testing.T) {
	c := Config{
		Fields:          []string{"status", "trace_id", "method", "route", "upstream_failure"},
		RequestHeaders:  Headers{{"tenant", "x-tenant-id"}, {"missing", "X-Nothing"}},
		ResponseHeaders: Headers{{"cache", "X-Cache-Status"}},
	}
	if err := c.Provision(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ex := &exchange.Exchange{Start: time.Now(), Method: "GET", Target: "/", Route: "/api", Status: 503,
		Request: http.Header{"X-Tenant-Id": {"acme", "second"},
			"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		Response: http.Header{"X-Cache-Status": {"MISS \"quoted\""}}}
	New(c, &out).Done(ex)
	want := `{"status":503,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","method":"GET","route":"/api",` +
		`"tenant":"acme","missing":"","cache":"MISS \"quoted\""}` + "\n"
	if out.String() != want {
		t.Errorf("line %s; want %s", out.String(), want)
	}

	// upstream_failure, listed first, appears only when there is one.
	out.Reset()
	c = Config{Fields: []string{"upstream_failure", "status"}}
	New(c, &out).Done(ex)
	if want := `{"status":503}` + "\n"; out.String() != want {
		t.Errorf("line %s; want %s", out.String(), want)
	}
	out.Reset()
	ex.SetFailure("dial: refused")
	New(c, &out).Done(ex)
	if want := `{"upstream_failure":"dial: refused","status":503}` + "\n"; out.String() != want {
		t.Errorf("line %s; want %s", out.String(), want)
	}

	// Plaintext: no peer_principal, tls false.
	out.Reset()
	New(Config{Fields: []string{"tls", "peer_principal"}}, &out).Done(&exchange.Exchange{})
	if want := `{"tls":false}` + "\n"; out.String() != want {
		t.Errorf("line %s; want %s", out.String(), want)
	}

	// No traceparent, or an invalid one: trace_id is "".
	out.Reset()
	ex.Request = http.Header{"Traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}
	New(Config{Fields: []string{"trace_id"}}, &out).Done(ex)
	if want := `{"trace_id":""}` + "\n"; out.String() != want {
		t.Errorf("line %s; want %s", out.String(), want)
	}
}

// Without a block the line has every default field, in Fields' order.
func TestDefaultFields(t *testing.T) {
	var out bytes.Buffer
	ex := &exchange.Exchange{Start: time.Now(), Request: http.Header{}, TLS: true, Principal: "spiffe://td/ns/shop/sa/web"}
	ex.SetFailure("x")
	New(Config{}, &out).Done(ex)
	if !strings.Contains(out.String(), `"tls":true,"peer_principal":"spiffe://td/ns/shop/sa/web"`) {
		t.Errorf("line %s: no tls and peer principal", out.String())
	}
	dec := json.NewDecoder(&out)
	dec.Token() // {
	var got []string
	for dec.More() {
		k, _ := dec.Token()
		got = append(got, k.(string))
		var v any
		dec.Decode(&v)
	}
	var want []string
	for _, f := range Fields {
		if f.Default {
			want = append(want, f.Name)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("fields %v; want %v", got, want)
	}
}
