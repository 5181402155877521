//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/proxyproto"
	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// In tproxy mode the unmodified Python server's own log shows the client's
// address; in redirect mode, the pod's (the agent's).
func TestTproxyKeepsClientAddress(t *testing.T) {
	for _, tc := range []struct {
		mode string
		peer netip.Addr
	}{{"redirect", localpod.PodIP}, {"tproxy", localpod.ClientIP}} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			p := newPod(t)
			app := p.startApp("")
			p.mustInit("--mode", tc.mode, "--ipv6", "off")
			p.startAgent("--mode", tc.mode)
			for i := 0; i < 3; i++ {
				body, err := p.get(fmt.Sprintf("http://%s:8080/index.html", localpod.PodIP))
				if err != nil || body != "hello from the unmodified app\n" {
					t.Fatalf("GET = %q, %v", body, err)
				}
			}
			// And three on one kept client connection: each request's
			// connection to the app comes from the client too (issue 28:
			// served on the loop, never from a pool shared by clients).
			kept := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext, MaxConnsPerHost: 1}}
			for i := 0; i < 3; i++ {
				resp, err := kept.Get(fmt.Sprintf("http://%s:8080/index.html", localpod.PodIP))
				if err != nil {
					t.Fatalf("GET on the kept connection: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			kept.CloseIdleConnections()
			if n := strings.Count(p.logged(app, " - - [", 6), tc.peer.String()+" - - ["); n != 6 {
				t.Errorf("the app logged %d requests from %s; want 6:\n%s", n, tc.peer, app.log)
			}
			p.waitFor("connections closed", func() bool { return p.metric("veneer_tcp_connections_closed_total", "8080") == 4 })
		})
	}
}

// tproxy mode for both families and raw TCP: the app's getpeername is the
// client's address, the return path goes back through the agent, and
// nothing loops.
func TestTproxyTCPAndIPv6(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	peers := p.listenPod(":9090")
	p.mustInit("--mode", "tproxy", "--inbound-ports", "9090", "--ipv6", "on")
	p.startAgent("--mode", "tproxy", "--config", p.writeConfig("default: {protocol: tcp}\n"))
	for _, addr := range []netip.Addr{localpod.PodIP, localpod.PodIP6} {
		c, err := p.Client.DialContext(context.Background(), "tcp", netip.AddrPortFrom(addr, 9090).String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		reply, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasPrefix(string(reply), "peer=") {
			t.Fatalf("reply via %s = %q, %v", addr, reply, err)
		}
		want := localpod.ClientIP
		if addr.Is6() {
			want = localpod.ClientIP6
		}
		if peer := <-peers; peer.Addr() != want {
			t.Errorf("the app's peer over %s = %s; want the client %s", addr, peer, want)
		}
	}
	if got := p.metric("veneer_tcp_connections_opened_total", "9090"); got != 2 {
		t.Errorf("agent opened %v connections; want 2 (more would be a loop)", got)
	}
}

// The tproxy plan holds the same guarantees as the redirect plan: a re-run
// changes nothing, --cleanup removes the mangle rules and the policy
// routing, --dry-run changes nothing and shows the routing.
func TestTproxyRerunCleanupDryRun(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	before := p.natRules("iptables-save") + p.mangle() + p.ipRules()
	dry, _, err := p.init(nil, "--mode", "tproxy", "--dry-run", "--ipv6", "off")
	if err != nil || !strings.Contains(dry, "-j TPROXY --on-port 15006") || !strings.Contains(dry, "# then: ip -4 rule add fwmark 0x539 lookup 133") {
		t.Errorf("--dry-run = %q, %v; want the TPROXY rule and the routing", dry, err)
	}
	if after := p.natRules("iptables-save") + p.mangle() + p.ipRules(); after != before {
		t.Errorf("--dry-run changed something:\n%s\n---\n%s", before, after)
	}
	p.mustInit("--mode", "tproxy", "--ipv6", "on")
	installed := p.mangle() + p.ipRules()
	if !strings.Contains(installed, "fwmark 0x539 lookup 133") || !strings.Contains(installed, "VENEER_TPROXY") {
		t.Fatalf("after install: %s", installed)
	}
	if stderr := p.mustInit("--mode", "tproxy", "--ipv6", "on"); !strings.Contains(stderr, "rules already in place") || strings.Contains(stderr, "policy routing set up") {
		t.Errorf("a re-run changed something:\n%s", stderr)
	}
	// Back to redirect mode: the mangle rules and the routing go.
	p.mustInit("--mode", "redirect", "--ipv6", "on")
	if m := p.mangle() + p.ipRules(); strings.Contains(m, "VENEER") || strings.Contains(m, "lookup 133") {
		t.Errorf("switching to redirect left tproxy's rules:\n%s", m)
	}
	p.mustInit("--mode", "tproxy", "--ipv6", "on")
	p.mustInit("--cleanup", "--ipv6", "on")
	if after := p.natRules("iptables-save") + p.mangle() + p.ipRules(); after != before {
		t.Errorf("--cleanup did not restore the pod:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// mangle is the pod's mangle table, both families, without counters.
func (p *pod) mangle() string {
	p.t.Helper()
	var out strings.Builder
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		cmd := exec.Command(save, "-t", "mangle")
		var b strings.Builder
		cmd.Stdout = &b
		if err := p.Pod.Pod.Run(cmd, 0); err != nil {
			p.t.Fatalf("%s: %v", save, err)
		}
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "-A") {
				out.WriteString(l + "\n")
			}
		}
	}
	return out.String()
}

// ipRules is the pod's policy routing, both families.
func (p *pod) ipRules() string {
	p.t.Helper()
	var out strings.Builder
	for _, args := range [][]string{{"-4", "rule"}, {"-6", "rule"}, {"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}} {
		cmd := exec.Command("ip", args...)
		cmd.Stdout = &out
		if err := p.Pod.Pod.Run(cmd, 0); err != nil {
			p.t.Fatalf("ip %v: %v", args, err)
		}
	}
	// Link-local routes and addresses come and go with the links: leave them out.
	var keep []string
	for _, l := range strings.Split(out.String(), "\n") {
		if !strings.Contains(l, "fe80") && !strings.Contains(l, "ff00::/8") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// The PROXY protocol hands the client's address to an app that reads it.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	for _, port := range []string{"9094", "9095"} {
		l, err := p.Pod.Pod.Listen("tcp", ":"+port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 108)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				n, _ := c.Read(buf)
				c.Write(buf[:n]) // what arrived first: the header
				c.Close()
			}
		}()
	}
	p.mustInit("--inbound-ports", "9094,9095", "--ipv6", "off")
	p.startAgent("--config", p.writeConfig(`ports:
  "9094": {protocol: tcp, proxyProtocol: v1}
  "9095": {protocol: tcp, proxyProtocol: v2}
`))
	for _, port := range []uint16{9094, 9095} {
		c, err := p.Client.DialContext(context.Background(), "tcp", netip.AddrPortFrom(localpod.PodIP, port).String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		local := c.LocalAddr().(*net.TCPAddr).AddrPort()
		c.Close()
		var want []byte
		if port == 9094 {
			want = []byte(fmt.Sprintf("PROXY TCP4 %s %s %d %d\r\n", localpod.ClientIP, localpod.PodIP, local.Port(), port))
		} else {
			want = proxyproto.Header(2, local, netip.AddrPortFrom(localpod.PodIP, port))
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the app on %d first received %q; want %q", port, got, want)
		}
	}
}
