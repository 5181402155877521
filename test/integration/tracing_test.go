//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// jaegerTrace is the part of Jaeger's /api/traces answer the test reads.
type jaegerTrace struct {
	Data []struct {
		Spans []struct {
			TraceID, SpanID, OperationName string
			ProcessID                      string
			References                     []struct{ RefType, TraceID, SpanID string }
			Tags                           []struct {
				Key   string
				Value any
			}
		}
		Processes map[string]struct{ ServiceName string }
	}
}

// The agent's spans in a real Jaeger, built from the Go module proxy
// (test/tools/jaeger): a request that came with a traceparent and one that
// did not are each found by their trace id through Jaeger's query API, with
// the agent's span (the parent the app saw), the HTTP semantic conventions'
// attributes and the response flag. With the collector gone, requests go on
// and the spans are counted as dropped.
func TestTracesInJaeger(t *testing.T) {
	t.Parallel()
	jaeger, _ := filepath.Abs("../../bin/jaeger")
	_, err := os.Stat(jaeger)
	need(t, err == nil, "bin/jaeger is not built (make bin/jaeger builds it from test/tools/jaeger)")
	p := newPod(t)
	p.startApp("")
	p.startTestApp(":8081")
	p.mustInit("--inbound-ports", "8080,8081")

	// Its OTLP port on the client namespace's address, where the agent
	// sends across the veth; the query API on its loopback.
	cfg, _ := filepath.Abs("../tools/jaeger/config.yaml")
	j := exec.Command(jaeger, "--config", "file:"+cfg)
	j.Env = append(os.Environ(), "OTLP_ENDPOINT="+localpod.ClientIP.String()+":4318")
	var jlog logBuffer
	j.Stdout, j.Stderr = &jlog, &jlog
	if err := p.Pod.Client.Start(j, 0); err != nil {
		t.Fatalf("starting jaeger: %v", err)
	}
	stopped := false
	stopJaeger := func() {
		if !stopped {
			j.Process.Kill()
			j.Wait()
			stopped = true
		}
	}
	t.Cleanup(func() {
		stopJaeger()
		if t.Failed() {
			t.Logf("jaeger:\n%s", jlog.String())
		}
	})
	query := p.client(p.Pod.Client)
	p.waitFor("jaeger's query API", func() bool {
		resp, err := query.Get("http://127.0.0.1:16686/api/services")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	p.startAgent("--otlp-endpoint", fmt.Sprintf("http://%s:4318", localpod.ClientIP), "--trace-sampling", "1", "--service-name", "shop",
		"--config", p.writeConfig(`default: {protocol: http, http: {tracing: true, requestId: true}}
ports: {"8080": {protocol: http, http: {tracing: true}, routes: [{prefix: /chaos, fault: {abort: {status: 503, percent: 100}}}]}}
`))

	// A request that starts no trace: the app (the test app, which echoes
	// what it got) sees the trace the agent started, and the agent's span.
	resp, body := p.getPath(8081, "/items")
	var echo struct{ Headers http.Header }
	if err := json.Unmarshal([]byte(body), &echo); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the test app answered %d %q", resp.StatusCode, body)
	}
	started := echo.Headers.Get("Traceparent")
	if len(started) != 55 || !strings.HasSuffix(started, "-01") {
		t.Fatalf("the app saw traceparent %q; want a sampled new trace", started)
	}
	// One that continues the client's trace, answered by a fault.
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp, _ := p.getPath(8080, "/chaos", "Traceparent", client); resp.StatusCode != 503 {
		t.Fatalf("/chaos: %d; want the fault's 503", resp.StatusCode)
	}

	find := func(traceID string) jaegerTrace {
		t.Helper()
		var tr jaegerTrace
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := query.Get("http://127.0.0.1:16686/api/traces/" + traceID)
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&tr)
				resp.Body.Close()
				if err == nil && len(tr.Data) == 1 && len(tr.Data[0].Spans) > 0 {
					return tr
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("trace %s not found in jaeger", traceID)
		return tr
	}
	tags := func(tr jaegerTrace) map[string]string {
		m := map[string]string{}
		for _, tag := range tr.Data[0].Spans[0].Tags {
			m[tag.Key] = fmt.Sprint(tag.Value)
		}
		return m
	}

	tr := find(started[3:35])
	s := tr.Data[0].Spans[0]
	if s.SpanID != started[36:52] || len(s.References) != 0 || s.OperationName != "GET" || tr.Data[0].Processes[s.ProcessID].ServiceName != "shop" {
		t.Errorf("span %s %q (refs %v, service %q); want the agent's span %s, a root, GET, of shop",
			s.SpanID, s.OperationName, s.References, tr.Data[0].Processes[s.ProcessID].ServiceName, started[36:52])
	}
	a := tags(tr)
	for k, want := range map[string]string{"span.kind": "server", "http.request.method": "GET", "url.path": "/items",
		"http.response.status_code": "200", "server.port": "8081", "client.address": localpod.ClientIP.String(),
		"network.protocol.version": "1.1", "user_agent.original": "Go-http-client/1.1"} {
		if a[k] != want {
			t.Errorf("span attribute %s = %q; want %q (all: %v)", k, a[k], want, a)
		}
	}
	if a["veneer.request_id"] != echo.Headers.Get("X-Request-Id") || a["veneer.request_id"] == "" {
		t.Errorf("veneer.request_id %q; the app saw %q", a["veneer.request_id"], echo.Headers.Get("X-Request-Id"))
	}

	tr = find(client[3:35])
	s = tr.Data[0].Spans[0]
	if len(s.References) != 1 || s.References[0].RefType != "CHILD_OF" || s.References[0].SpanID != client[36:52] || s.OperationName != "GET /chaos" {
		t.Errorf("span %q refs %v; want GET /chaos, a child of the client's span %s", s.OperationName, s.References, client[36:52])
	}
	a = tags(tr)
	if a["veneer.response_flags"] != "FI" || a["http.response.status_code"] != "503" || a["error"] != "true" || a["http.route"] != "/chaos" {
		t.Errorf("fault's span attributes %v; want flag FI, 503, an error, route /chaos", a)
	}

	// The collector down: every request still answered, the spans dropped
	// and counted.
	stopJaeger()
	const n = 50
	for i := range n {
		if resp, _ := p.getPath(8080, "/"); resp.StatusCode != 200 {
			t.Fatalf("request %d with the collector down: %d", i, resp.StatusCode)
		}
	}
	p.waitFor(fmt.Sprintf("%d spans counted as dropped", n), func() bool {
		dropped := 0.0
		for _, m := range p.families()["veneer_trace_spans_dropped_total"].GetMetric() {
			dropped += m.GetCounter().GetValue()
		}
		return dropped >= n
	})
}
