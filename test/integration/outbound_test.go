//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// The app's own outgoing connections go through the agent (decorated,
// labelled outbound), except the agent's own, excluded ports and CIDRs, and
// DNS; re-run, clean-up and dry-run hold with outbound capture too.
func TestOutboundCapture(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	// Servers outside the pod, in the client namespace.
	for _, port := range []string{"9999", "9998"} {
		l, err := p.Client.Listen("tcp", ":"+port)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "outside %s, peer %s, x-from-pod=%s", port, r.RemoteAddr, r.Header.Get("X-From-Pod"))
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	before := p.natRules("iptables-save")
	args := []string{"--outbound", "--exclude-outbound-ports", "9998", "--exclude-outbound-cidrs", localpod.ClientIP6.String() + "/128", "--ipv6", "on"}
	dry, _, err := p.init(nil, append(args, "--dry-run")...)
	if err != nil || !strings.Contains(dry, "-A VENEER_OUT_REDIRECT -p tcp -m comment --comment \"veneer: redirect to agent outbound port 15001\" -j REDIRECT --to-ports 15001") {
		t.Errorf("--dry-run = %q, %v", dry, err)
	}
	if after := p.natRules("iptables-save"); after != before {
		t.Errorf("--dry-run changed the nat table")
	}
	p.mustInit(args...)
	if stderr := p.mustInit(args...); !strings.Contains(stderr, "rules already in place") {
		t.Errorf("a re-run changed something:\n%s", stderr)
	}
	agent := p.startAgent("--config", p.writeConfig(`outbound:
  protocol: auto
  http:
    headers: {request: {set: {x-from-pod: yes}}}
  routes:
  - prefix: /blocked
    fault: {abort: {status: 503, percent: 100}}
`))

	// curl, run as the app's user inside the pod.
	curl := func(url string) string {
		t.Helper()
		cmd := exec.Command("curl", "-sS", "--max-time", "10", url)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := p.Pod.Pod.Run(cmd, 65534); err != nil {
			t.Fatalf("curl %s from the app: %v %s", url, err, out.String())
		}
		return out.String()
	}
	if got := curl(fmt.Sprintf("http://%s:9999/", localpod.ClientIP)); !strings.HasPrefix(got, "outside 9999, peer "+localpod.PodIP.String()) ||
		!strings.HasSuffix(got, "x-from-pod=yes") {
		t.Errorf("the app's call = %q; want the outside server's answer, with the outbound header rule applied", got)
	}
	p.waitFor("the outbound connection closed", func() bool { return p.metricDir("veneer_tcp_connections_closed_total", "outbound", "9999") == 1 })
	p.waitFor("an outbound access log line for the call", func() bool {
		l := agent.log.String()
		return strings.Contains(l, `"direction":"outbound"`) && strings.Contains(l, `"upstream_host":"`+localpod.ClientIP.String()+`:9999"`)
	})
	// Outbound decorations: a fault on one route, a header on every call.
	if got := curl(fmt.Sprintf("http://%s:9999/blocked", localpod.ClientIP)); !strings.Contains(got, "fault injected") {
		t.Errorf("the app's call to /blocked = %q; want the injected fault", got)
	}
	p.waitFor("the outbound fault counted", func() bool {
		resp, err := p.client(p.Pod.Pod).Get("http://127.0.0.1:15000/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `veneer_requests_total{code="503",direction="outbound",flags="FI",method="GET",port="9999",tls="false"} 1`)
	})
	// Excluded port and CIDR: straight out, the agent not involved.
	if got := curl(fmt.Sprintf("http://%s:9998/", localpod.ClientIP)); !strings.HasSuffix(got, "x-from-pod=") {
		t.Errorf("the call to an excluded port = %q; want it untouched by the agent", got)
	}
	curl(fmt.Sprintf("http://[%s]:9999/", localpod.ClientIP6))
	if n := p.metricDir("veneer_tcp_connections_opened_total", "outbound", "9998"); n != 0 {
		t.Errorf("an excluded port went through the agent %v times", n)
	}
	if n := p.metricDir("veneer_tcp_connections_opened_total", "outbound", "9999"); n != 2 {
		t.Errorf("outbound connections to 9999 through the agent = %v; want 2 (the excluded CIDR went straight out; more would be a loop)", n)
	}

	p.mustInit("--cleanup", "--ipv6", "on")
	if after := p.natRules("iptables-save"); after != before {
		t.Errorf("--cleanup did not restore the nat table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
