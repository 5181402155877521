//go:build linux

package integration

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

var backends = []string{"legacy", "nft"}

// requireBackend skips unless the iptables binaries of backend are installed.
func requireBackend(t *testing.T, backend string) {
	requireTool(t, "iptables-"+backend, "iptables-"+backend+"-restore", "iptables-"+backend+"-save",
		"ip6tables-"+backend, "ip6tables-"+backend+"-restore")
}

// The seed's scenario, for both backends: a request from outside the pod to
// the Python server on 8080 reaches it through the agent.
func TestInterceptsInbound(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			requireBackend(t, backend)
			p := newPod(t)
			app := p.startApp("")
			p.mustInit("--backend", backend)
			agent := p.startAgent()

			const n = 5
			for i := 0; i < n; i++ {
				body, err := p.get(fmt.Sprintf("http://%s:8080/index.html", localpod.PodIP))
				if err != nil {
					t.Fatal(err)
				}
				if body != "hello from the unmodified app\n" {
					t.Fatalf("body = %q; want the app's index.html", body)
				}
			}
			p.waitFor("connections closed", func() bool { return p.metric("veneer_tcp_connections_closed_total", "8080") == n })
			if got := p.metric("veneer_tcp_connections_opened_total", "8080"); got != n {
				t.Errorf("veneer_tcp_connections_opened_total{port=8080} = %v; want %d", got, n)
			}
			// One core by default (--workers 1), as Linkerd's proxy.
			if got := p.metricDir("go_sched_gomaxprocs_threads", "", ""); got != 1 {
				t.Errorf("go_sched_gomaxprocs_threads = %v; want 1 (--workers' default)", got)
			}
			if got := p.metric("veneer_tcp_received_bytes_total", "8080"); got <= 0 {
				t.Errorf("veneer_tcp_received_bytes_total{port=8080} = %v; want > 0", got)
			}
			if got := p.metric("veneer_tcp_sent_bytes_total", "8080"); got <= 0 {
				t.Errorf("veneer_tcp_sent_bytes_total{port=8080} = %v; want > 0", got)
			}

			// The app's own access log: its peer is the agent, inside the pod.
			appLog := p.logged(app, " - - [", n)
			if want := localpod.PodIP.String() + ` - - [`; strings.Count(appLog, want) != n {
				t.Errorf("app log has %d lines from %s; want %d:\n%s", strings.Count(appLog, want), localpod.PodIP, n, appLog)
			}
			if strings.Contains(appLog, localpod.ClientIP.String()) {
				t.Errorf("app saw the client %s directly; every connection should come through the agent:\n%s", localpod.ClientIP, appLog)
			}
			// The agent's connection log: one line per connection, with the client.
			want := fmt.Sprintf(`"client":"%s:\d+","original_dst":"%s:8080","bytes_received":\d+,"bytes_sent":\d+,"duration_ms":[0-9.]+,"end":"http"`,
				regexp.QuoteMeta(localpod.ClientIP.String()), regexp.QuoteMeta(localpod.PodIP.String()))
			if got := len(regexp.MustCompile(want).FindAllString(p.logged(agent, `"message":"connection closed"`, n), -1)); got != n {
				t.Errorf("agent logged %d connection lines matching %s; want %d:\n%s", got, want, n, agent.log)
			}
		})
	}
}

// A port that is not captured reaches the app directly, with the client's address.
func TestUncapturedPortIsNotIntercepted(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	peers := p.listenPod(":9090")
	p.mustInit("--inbound-ports", "8080")
	p.startAgent()

	c := p.mustDial(9090, 10*time.Second)
	io.ReadAll(c)
	c.Close()
	if peer := <-peers; peer.Addr() != localpod.ClientIP {
		t.Errorf("server on 9090 saw peer %s; want the client %s, not the agent", peer, localpod.ClientIP)
	}
	if got := p.metric("veneer_tcp_connections_opened_total", "9090"); got != 0 {
		t.Errorf("agent counted %v connections to 9090; want 0", got)
	}
}

// With every port captured, the agent's own connection to the app is not
// captured again: each request is one connection through the agent, and the
// app's server sees the agent (the pod's address) as its peer.
func TestAgentConnectionsAreNotLooped(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	peers := p.listenPod(":9090")
	p.mustInit("--inbound-ports", "*")
	p.startAgent()

	const n = 3
	for i := 0; i < n; i++ {
		c := p.mustDial(9090, 5*time.Second)
		reply, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasPrefix(string(reply), "peer=") {
			t.Fatalf("reply = %q, %v; want the server's peer= line", reply, err)
		}
		if peer := <-peers; peer.Addr() != localpod.PodIP {
			t.Errorf("server saw peer %s; want the agent at %s", peer, localpod.PodIP)
		}
	}
	p.waitFor("connections closed", func() bool { return p.metric("veneer_tcp_connections_closed_total", "9090") == n })
	if got := p.metric("veneer_tcp_connections_opened_total", "9090"); got != n {
		t.Errorf("agent opened %v connections to 9090; want exactly %d (more would mean a loop)", got, n)
	}
}

// IPv6: with --ipv6 auto and a global IPv6 address, the same plan goes
// through ip6tables, and a request over IPv6 reaches the app via the agent.
func TestIPv6(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			requireBackend(t, backend)
			p := newPod(t)
			app := p.startApp("::") // Python binds IPv4 only unless told
			stderr := p.mustInit("--backend", backend)
			if !strings.Contains(stderr, "ipv6 on") {
				t.Errorf("veneer-init did not turn IPv6 on for a pod with a global IPv6 address:\n%s", stderr)
			}
			p.startAgent()
			body, err := p.get(fmt.Sprintf("http://[%s]:8080/index.html", localpod.PodIP6))
			if err != nil || body != "hello from the unmodified app\n" {
				t.Fatalf("GET over IPv6 = %q, %v", body, err)
			}
			p.waitFor("connection closed", func() bool { return p.metric("veneer_tcp_connections_closed_total", "8080") == 1 })
			if !strings.Contains(p.logged(app, " - - [", 1), localpod.PodIP6.String()) {
				t.Errorf("app log does not show the agent's IPv6 address %s as its peer:\n%s", localpod.PodIP6, app.log)
			}
			if rules := p.natRules("ip6tables-" + backend + "-save"); !strings.Contains(rules, "-j REDIRECT --to-ports 15006") {
				t.Errorf("ip6tables nat table lacks the redirect:\n%s", rules)
			}
		})
	}
}

// A re-run finds its rules in place and changes nothing; --cleanup leaves the
// nat table as it found it, another tool's rules included; --dry-run changes
// nothing.
func TestRerunCleanupDryRun(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			requireBackend(t, backend)
			p := newPod(t)
			save := "iptables-" + backend + "-save"
			// Another tool's chain and jump, which veneer must leave alone.
			inPod := exec.Command("iptables-"+backend+"-restore", "--noflush")
			inPod.Stdin = strings.NewReader("*nat\n:OTHER_TOOL - [0:0]\n-A OTHER_TOOL -p tcp --dport 22 -j RETURN\n-A PREROUTING -p tcp -j OTHER_TOOL\nCOMMIT\n")
			if err := p.Pod.Pod.Run(inPod, 0); err != nil {
				t.Fatalf("adding foreign rules in the pod: %v", err)
			}
			before := p.natRules(save)

			dry, _, err := p.init(nil, "--backend", backend, "--dry-run", "--ipv6", "off")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(dry, "-A VENEER_IN_REDIRECT -p tcp -m comment --comment \"veneer: redirect to agent port 15006\" -j REDIRECT --to-ports 15006") {
				t.Errorf("--dry-run output lacks the redirect rule:\n%s", dry)
			}
			if after := p.natRules(save); after != before {
				t.Errorf("--dry-run changed the nat table:\nbefore:\n%s\nafter:\n%s", before, after)
			}

			p.mustInit("--backend", backend, "--ipv6", "off")
			installed := p.natRules(save)
			if !strings.Contains(installed, "-A OTHER_TOOL") || !strings.Contains(installed, "-A VENEER_INBOUND") {
				t.Fatalf("after install, want both veneer's and the other tool's rules:\n%s", installed)
			}
			stderr := p.mustInit("--backend", backend, "--ipv6", "off")
			if !strings.Contains(stderr, "rules already in place; nothing changed") {
				t.Errorf("re-run did not report its rules in place:\n%s", stderr)
			}
			if again := p.natRules(save); again != installed {
				t.Errorf("re-run changed the nat table:\nbefore:\n%s\nafter:\n%s", installed, again)
			}
			dry, _, _ = p.init(nil, "--backend", backend, "--dry-run", "--ipv6", "off")
			if !strings.Contains(dry, "nothing to change") {
				t.Errorf("--dry-run over its own rules = %q; want it to say nothing changes", dry)
			}

			p.mustInit("--backend", backend, "--ipv6", "off", "--cleanup")
			if after := p.natRules(save); after != before {
				t.Errorf("--cleanup did not restore the nat table:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// Partial or different rules from an earlier run are brought to the plan in
// one transaction: requests sent all through the re-run go through the
// agent, none around it.
func TestRerunOverStaleRulesNeverBypasses(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.startApp("")
	p.mustInit("--inbound-ports", "8080,9090", "--exclude-inbound-ports", "9090", "--ipv6", "off")
	p.startAgent()

	stop := make(chan struct{})
	results := make(chan error, 1)
	var sent int
	go func() {
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); sent++ {
			select {
			case <-stop:
				results <- err
				return
			default:
			}
			if _, err = p.get(fmt.Sprintf("http://%s:8080/index.html", localpod.PodIP)); err != nil {
				break
			}
		}
		results <- err
	}()
	for i := 0; i < 5; i++ {
		p.mustInit("--inbound-ports", "8080", "--ipv6", "off")
		p.mustInit("--inbound-ports", "8080,3306", "--ipv6", "off")
	}
	close(stop)
	if err := <-results; err != nil {
		t.Fatalf("a request failed during re-runs: %v", err)
	}
	p.waitFor("connections closed", func() bool {
		return p.metric("veneer_tcp_connections_closed_total", "8080") == float64(sent)
	})
	if got := p.metric("veneer_tcp_connections_opened_total", "8080"); got != float64(sent) || sent == 0 {
		t.Errorf("agent saw %v of %d requests; want all of them (none may bypass it)", got, sent)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.mustInit()

	_, stderr, err := p.init(nil, "--validate", "--validate-timeout", "2s")
	if err == nil {
		t.Fatalf("--validate with no agent running succeeded; want a failure:\n%s", stderr)
	}
	if !strings.Contains(stderr, "no agent listens on 127.0.0.1:15006 (is veneer-agent running?)") {
		t.Errorf("--validate with no agent: stderr does not say why clearly:\n%s", stderr)
	}

	agent := p.startAgent()
	if _, stderr, err := p.init(nil, "--validate"); err != nil {
		t.Fatalf("--validate with the agent up failed: %v\n%s", err, stderr)
	}
	if !strings.Contains(p.logged(agent, `"end":"validation_probe"`, 1), `"original_dst":"127.0.0.1:8080","end":"validation_probe"`) {
		t.Errorf("agent did not answer the probe with its original destination:\n%s", agent.log)
	}
	// The probe's temporary rule is gone.
	if rules := p.natRules("iptables-save"); strings.Contains(rules, "validation probe") {
		t.Errorf("the validation rule was left behind:\n%s", rules)
	}
}

// Bad input and a missing capability or binary: one clear line naming the
// input, a non-zero exit, and no rules left behind.
func TestInitErrors(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		uid  uint32
		want string
	}{
		{name: "port out of range", args: []string{"--inbound-ports", "8080,70000"},
			want: `veneer-init: --inbound-ports: "70000" is not a port (1-65535)`},
		{name: "bad port from env", env: []string{"VENEER_PROXY_PORT=0"},
			want: `veneer-init: --proxy-port: "0" is not a port (1-65535)`},
		{name: "unknown backend", args: []string{"--backend", "ebpf"},
			want: `veneer-init: --backend: "ebpf" is not a backend (auto, legacy or nft)`},
		{name: "bad ipv6", args: []string{"--ipv6", "maybe"},
			want: `veneer-init: --ipv6: "maybe" is not a choice (auto, on or off)`},
		{name: "no iptables binary", env: []string{"PATH=/nonexistent"}, args: []string{"--backend", "nft"},
			want: "veneer-init: --backend nft: iptables-nft not found in $PATH (install iptables 1.8 or later)"},
		{name: "no NET_ADMIN", uid: 1337,
			want: "permission denied: veneer-init needs the NET_ADMIN and NET_RAW capabilities (and root)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin+"/veneer-init", tc.args...)
			cmd.Env = append(cmd.Environ(), tc.env...)
			out, err := runIn(p, cmd, tc.uid)
			if err == nil {
				t.Fatalf("veneer-init succeeded; want a failure saying %q", tc.want)
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
				t.Errorf("exit = %v; want a non-zero exit status", err)
			}
			last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
			if !strings.Contains(last, tc.want) {
				t.Errorf("last line = %q; want it to contain %q", last, tc.want)
			}
			if rules := p.natRules("iptables-save"); strings.Contains(rules, "VENEER") {
				t.Errorf("rules left behind after a failure:\n%s", rules)
			}
		})
	}
}

func runIn(p *pod, cmd *exec.Cmd, uid uint32) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := p.Pod.Pod.Run(cmd, uid)
	return out.String(), err
}

// SIGTERM: the agent stops accepting, lets an open connection finish, and
// exits 0.
func TestAgentDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	peers := make(chan struct{})
	l, err := p.Pod.Pod.Listen("tcp", ":9090")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		close(peers)
		// Answer only after the agent has been told to stop.
		time.Sleep(500 * time.Millisecond)
		c.Write([]byte("late answer\n"))
		c.Close()
	}()
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent("--drain-timeout", "60s")

	c := p.mustDial(9090, 2*time.Minute)
	defer c.Close()
	<-peers
	agent.cmd.Process.Signal(syscall.SIGTERM)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	reply, err := io.ReadAll(c)
	c.Close() // the client's side done too: the connection is over
	if err != nil || string(reply) != "late answer\n" {
		t.Errorf("in-flight reply during drain = %q, %v; want %q", reply, err, "late answer\n")
	}
	select {
	case err := <-agent.done:
		if err != nil {
			t.Errorf("agent exit after SIGTERM = %v; want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not exit once its last connection ended (long before the 60s drain timeout)")
	}
	agent.done <- nil // for the clean-up
}

// If the IPv6 table cannot be written after the IPv4 one was, the IPv4 one
// is rolled back: a pod never runs with half its capture.
func TestInitRollsBackOnPartialFailure(t *testing.T) {
	t.Parallel()
	requireBackend(t, "nft")
	p := newPod(t)
	// An ip6tables-nft-restore that fails, ahead of the real one in $PATH.
	dir, err := os.MkdirTemp("", "veneer-fakebin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fake := "#!/bin/sh\necho 'ip6tables-restore v1.8.9 (nf_tables): line 2 failed' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "ip6tables-nft-restore"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	before := p.natRules("iptables-nft-save")
	_, stderr, err := p.init([]string{"PATH=" + dir + ":" + os.Getenv("PATH")}, "--backend", "nft", "--ipv6", "on")
	if err == nil {
		t.Fatalf("veneer-init succeeded with a failing ip6tables-nft-restore:\n%s", stderr)
	}
	if !strings.Contains(stderr, "line 2 failed") || !strings.Contains(stderr, `"rolled back"`) {
		t.Errorf("stderr does not show the failure and the roll-back:\n%s", stderr)
	}
	if after := p.natRules("iptables-nft-save"); after != before {
		t.Errorf("IPv4 rules were left behind after the IPv6 failure:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// --backend auto follows what the namespace already uses, so a pod never
// ends up with rules split between legacy and nft.
func TestAutoBackend(t *testing.T) {
	t.Parallel()
	requireBackend(t, "legacy")
	requireBackend(t, "nft")

	t.Run("another tool's rules", func(t *testing.T) {
		p := newPod(t)
		other := exec.Command("iptables-legacy-restore", "--noflush")
		other.Stdin = strings.NewReader("*nat\n:OTHER_TOOL - [0:0]\n-A PREROUTING -p tcp -j OTHER_TOOL\nCOMMIT\n")
		if err := p.Pod.Pod.Run(other, 0); err != nil {
			t.Fatal(err)
		}
		stderr := p.mustInit("--ipv6", "off")
		if !strings.Contains(stderr, `"backend":"legacy","reason":"it holds more rules"`) {
			t.Errorf("auto did not pick legacy, where the other tool's rules are:\n%s", stderr)
		}
		if rules := p.natRules("iptables-nft-save"); strings.Contains(rules, "VENEER") {
			t.Errorf("veneer's rules went to nft:\n%s", rules)
		}
	})
	t.Run("its own earlier rules", func(t *testing.T) {
		p := newPod(t)
		p.mustInit("--ipv6", "off", "--backend", "legacy")
		stderr := p.mustInit("--ipv6", "off")
		if !strings.Contains(stderr, `"backend":"legacy","reason":"it holds veneer's chains already"`) ||
			!strings.Contains(stderr, "rules already in place") {
			t.Errorf("a re-run with auto did not stay on legacy with its rules in place:\n%s", stderr)
		}
	})
}
