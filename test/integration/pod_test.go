//go:build linux

// Package integration runs the real veneer-init and veneer-agent, built from
// this tree, in a local pod (pkg/testbed/localpod) with real iptables, the seed's
// Python server as the app and real clients in the client namespace.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// bin holds veneer-init and veneer-agent, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "veneer-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	// The agent runs as UID 1337: it must be able to reach its binary.
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	for name, pkg := range map[string]string{"veneer-init": "../../cmd/init", "veneer-agent": "../../cmd/agent"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
	}
	bin = dir
	return m.Run(), nil
}

// need skips (or, under CI, fails) a test whose requirement is missing, and
// says which: CI provides every requirement, so there a skip would hide a gap.
func need(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("requirement missing in CI: %s", why)
	}
	t.Skipf("skipped: %s", why)
}

func requireRoot(t *testing.T) {
	need(t, os.Geteuid() == 0, "integration tests need root (network namespaces, iptables); run `make test` as root")
}

func requireTool(t *testing.T, tools ...string) {
	for _, tool := range tools {
		_, err := exec.LookPath(tool)
		need(t, err == nil, tool+" is not installed (apt-get install -y iptables python3 curl)")
	}
}

var podSeq atomic.Int32

// pod is a local pod with the processes a test started in it.
type pod struct {
	*localpod.Pod
	t *testing.T
}

func newPod(t *testing.T) *pod {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("v%04d%02d", os.Getpid()%10000, podSeq.Add(1)%100)
	p, err := localpod.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("removing the pod: %v", err)
		}
	})
	return &pod{Pod: p, t: t}
}

// logBuffer collects a process's output; safe to read while it writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a process started in the pod; it is stopped when the test ends.
type proc struct {
	cmd  *exec.Cmd
	log  *logBuffer
	done chan error
}

// start runs name inside the pod namespace as id (0: root).
func (p *pod) start(id uint32, name string, args ...string) *proc {
	p.t.Helper()
	return p.startCaps(id, nil, name, args...)
}

// startCaps runs name as id with the ambient capabilities caps.
func (p *pod) startCaps(id uint32, caps []uintptr, name string, args ...string) *proc {
	p.t.Helper()
	return p.startIn(p.Pod.Pod, id, caps, name, args...)
}

// startIn runs name inside ns (the pod's, or the client's) as id with the
// ambient capabilities caps.
func (p *pod) startIn(ns *localpod.NS, id uint32, caps []uintptr, name string, args ...string) *proc {
	p.t.Helper()
	pr := &proc{cmd: exec.Command(name, args...), log: &logBuffer{}, done: make(chan error, 1)}
	pr.cmd.Stdout, pr.cmd.Stderr = pr.log, pr.log
	if len(caps) > 0 {
		pr.cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: caps}
	}
	if err := ns.Start(pr.cmd, id); err != nil {
		p.t.Fatalf("starting %s: %v", name, err)
	}
	go func() { pr.done <- pr.cmd.Wait() }()
	p.t.Cleanup(func() {
		pr.cmd.Process.Kill()
		<-pr.done
		if p.t.Failed() {
			p.t.Logf("output of %s:\n%s", name, pr.log)
		}
	})
	return pr
}

// initRun runs veneer-init inside the pod as root, with env added.
func (p *pod) init(env []string, args ...string) (stdout, stderr string, err error) {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(bin, "veneer-init"), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = p.Pod.Pod.Run(cmd, 0)
	return o.String(), e.String(), err
}

// mustInit runs veneer-init and fails the test if it fails.
func (p *pod) mustInit(args ...string) string {
	p.t.Helper()
	_, stderr, err := p.init(nil, args...)
	if err != nil {
		p.t.Fatalf("veneer-init %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stderr
}

// startAgent runs veneer-agent as UID/GID 1337 and waits until /ready.
// With "--mode tproxy" among args it gets CAP_NET_ADMIN and CAP_NET_RAW, as
// the tproxy mode needs (a file capability on the binary, in an image).
func (p *pod) startAgent(args ...string) *proc {
	p.t.Helper()
	var caps []uintptr
	if strings.Contains(strings.Join(args, " "), "--mode tproxy") {
		caps = []uintptr{12 /* CAP_NET_ADMIN */, 13 /* CAP_NET_RAW */}
	}
	a := p.startCaps(1337, caps, filepath.Join(bin, "veneer-agent"), args...)
	c := p.client(p.Pod.Pod)
	p.waitFor("agent ready", func() bool {
		resp, err := c.Get("http://127.0.0.1:15000/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

// python3 is Debian's, not a per-user shim in root's PATH that the app's
// user cannot read.
func python3(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	need(t, false, "python3 is not installed at /usr/bin/python3 (apt-get install -y python3)")
	return ""
}

// startApp runs the seed's app, `python3 -m http.server 8080`, unmodified,
// as nobody, serving a folder with index.html, and waits until it listens.
func (p *pod) startApp(bind string) *proc {
	p.t.Helper()
	// Not t.TempDir(): its parent is private to root, and the app runs as nobody.
	dir, err := os.MkdirTemp("", "veneer-app-")
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello from the unmodified app\n"), 0o644); err != nil {
		p.t.Fatal(err)
	}
	args := []string{"-m", "http.server", "8080", "--directory", dir}
	if bind != "" {
		args = append(args, "--bind", bind)
	}
	app := p.start(65534, python3(p.t), args...)
	p.waitFor("app listening", func() bool {
		c, err := p.Pod.Pod.DialContext(context.Background(), "tcp", "127.0.0.1:8080")
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return app
}

// logged waits until pr's output holds s at least n times and returns the
// output: a process's output reaches the test through a pipe, so it may lag
// behind answers the test has already seen.
func (p *pod) logged(pr *proc, s string, n int) string {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%d of %q in the output of %s", n, s, pr.cmd.Path), func() bool { return strings.Count(pr.log.String(), s) >= n })
	return pr.log.String()
}

func (p *pod) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial connects from the client namespace to the pod's port, with a
// deadline on the connection's reads and writes.
func (p *pod) dial(port int, within time.Duration) (net.Conn, error) {
	c, err := p.Client.DialContext(context.Background(), "tcp", fmt.Sprintf("%s:%d", localpod.PodIP, port))
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(within))
	return c, nil
}

// mustDial is dial that ends the test when the connection fails.
func (p *pod) mustDial(port int, within time.Duration) net.Conn {
	p.t.Helper()
	c, err := p.dial(port, within)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// client is an http.Client whose connections start inside ns, one
// connection per request, so that connection counters count requests.
func (p *pod) client(ns *localpod.NS) *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true},
	}
}

// get fetches url from the client namespace and returns the body.
func (p *pod) get(url string) (string, error) {
	resp, err := p.client(p.Client).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// metric reads one inbound sample of the agent's /metrics, parsed by
// Prometheus' own text parser; 0 when the series does not exist yet.
func (p *pod) metric(name, port string) float64 {
	p.t.Helper()
	return p.metricDir(name, "inbound", port)
}

// metricDir is the sum of the samples for a direction and port (of every
// other label: tls, code...).
func (p *pod) metricDir(name, direction, port string) float64 {
	p.t.Helper()
	mf, ok := p.families()[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["port"] == port && labels["direction"] == direction {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// families is the agent's /metrics, parsed by Prometheus' own text parser.
func (p *pod) families() map[string]*dto.MetricFamily {
	p.t.Helper()
	return p.familiesIn(p.Pod.Pod)
}

// familiesIn is the /metrics of the agent in ns.
func (p *pod) familiesIn(ns *localpod.NS) map[string]*dto.MetricFamily {
	p.t.Helper()
	resp, err := p.client(ns).Get("http://127.0.0.1:15000/metrics")
	if err != nil {
		p.t.Fatalf("scraping /metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		p.t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// natRules is the nat table as iptables-save prints it, without the
// comments and packet counters that change by themselves.
func (p *pod) natRules(save string) string {
	p.t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(save, "-t", "nat")
	cmd.Stdout = &out
	if err := p.Pod.Pod.Run(cmd, 0); err != nil {
		p.t.Fatalf("%s: %v", save, err)
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			l = l[:strings.LastIndex(l, " ")] // drop [packets:bytes]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// listenPod runs a TCP server inside the pod on addr that records the peer
// address of each connection and answers "peer=ADDR\n".
func (p *pod) listenPod(addr string) <-chan netip.AddrPort {
	p.t.Helper()
	peers := make(chan netip.AddrPort, 100)
	p.servePod(addr, func(c net.Conn) {
		peer := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		peers <- netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
		fmt.Fprintf(c, "peer=%s\n", peer)
		c.Close()
	})
	return peers
}

// servePod runs an app listening at addr inside the pod until the test
// ends, handle serving each connection on its own goroutine.
func (p *pod) servePod(addr string, handle func(net.Conn)) {
	p.t.Helper()
	l, err := p.Pod.Pod.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

func port(p uint16) string { return strconv.Itoa(int(p)) }

// firstRead connects from the client namespace to the pod's port, sends
// nothing, and returns the error of the connection or of its first read
// (nil if a byte arrived): a refused or reset connection shows here.
func (p *pod) firstRead(port int) error {
	c, err := p.dial(port, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Read(make([]byte, 1))
	return err
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }
