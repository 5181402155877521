//go:build linux

// Command bench measures what veneer costs per request against a direct
// connection and against the proxies users would use instead, all behind
// the same REDIRECT rule in one local pod, with the cases interleaved round
// by round so that machine drift hits all alike; medians are reported.
// `make bench` builds what it needs and runs it as root.
//
//	go run ./test/bench -rounds 3 -duration 5s
package main

import (
	"bufio"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

var (
	rounds   = flag.Int("rounds", 3, "rounds of every case")
	duration = flag.Duration("duration", 5*time.Second, "each wrk and fortio run")
	bin      = flag.String("bin", "bin", "where veneer's binaries, fastapp and fortio are")
	only     = flag.String("cases", "", "measure only the cases whose names match this regular expression")
	workers2 = flag.Bool("two-workers", false, "also measure veneer tcp and http with --workers 2, beside the default one")
	jaeger   = flag.String("jaeger", "", "a Jaeger binary (make bin/jaeger): also measure veneer http with tracing, its spans sent over OTLP to it at 1% and 100% sampling")
	compare  = flag.String("compare", "", "another veneer-agent binary (an older build, say) to measure as tcp and http cases beside this one")
	profiles = flag.String("profile", "", "write a CPU profile of each veneer case's wrk run (pprof, from its admin port) to this folder")
	perfStat = flag.Bool("perf", false, "count each proxy's syscalls and context switches during the wrk run (perf stat), per request")
	mesh     = flag.Bool("mesh", false, "also measure two agents, a client pod's (outbound capture) and the server pod's, in plaintext and with mTLS between them")
)

// A case is one way to reach the app: a REDIRECT target (0: no capture).
type proxyCase struct {
	name string
	port int      // the REDIRECT target; 0 for direct
	cmd  []string // the proxy, started once
	uid  uint32
	app  string // "fast" or "python"
	// bare: no proxy, a second copy of the app behind the REDIRECT rule:
	// what the capture alone (nat and conntrack) costs.
	bare bool
	// mode is veneer-init's and the agent's --mode: "" is redirect.
	mode   string
	stdout io.Writer // where the proxy's output goes; nil: /dev/null
	proc   *exec.Cmd
	admin  int // veneer's --admin-local port, on the pod's loopback; 0 for the others
	// A mesh case: a client-side agent too, in the client namespace, which
	// gets the client's connections by outbound capture to outPort. Its
	// CPU counts with the server-side agent's.
	clientCmd []string
	client    *exec.Cmd
	outPort   int
}

//go:embed every.yaml
var everyDecoration string

type result struct {
	rps, p50, p90, p99, streamMBps []float64
	cpuPerReq                      []float64 // µs of proxy CPU per request served by wrk
	cpuPer1k                       []float64 // cores of proxy CPU at fortio's 1,000 req/s
	syscallsPerReq, switchesPerReq []float64 // perf stat's counts during the wrk run, per request (-perf)
	connPerSec, cpuPerConn         []float64 // mesh cases: wrk with a new connection per request, and both agents' µs per connection
	machinePerReq                  []float64 // µs of every core's busy time per request during the wrk run (-perf)
	rssFresh, rssIdle, rss1k       float64
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	if *profiles != "" {
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			return fmt.Errorf("-profile: %w", err)
		}
	}
	localpod.Delete("bench")
	pod, err := localpod.Create("bench")
	if err != nil {
		return err
	}
	defer pod.Close()
	dir, _ := os.MkdirTemp("", "veneer-bench-")
	os.Chmod(dir, 0o755)
	defer os.RemoveAll(dir)
	abs := func(p string) string { a, _ := filepath.Abs(filepath.Join(*bin, p)); return a }
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL) // with nginx's and haproxy's workers
			p.Wait()
		}
	}()
	// startIn runs a process in ns. Output goes to /dev/null unless
	// stdout says otherwise: no pipe that a worker could hold open.
	startIn := func(ns *localpod.NS, id uint32, stdout io.Writer, args ...string) (*exec.Cmd, error) {
		c := exec.Command(args[0], args[1:]...)
		c.Stdout = stdout
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := ns.Start(c, id); err != nil {
			return nil, err
		}
		procs = append(procs, c)
		return c, nil
	}
	start := func(id uint32, stdout io.Writer, args ...string) (*exec.Cmd, error) {
		return startIn(pod.Pod, id, stdout, args...)
	}

	// The apps: a fast one, and the seed's Python server on a 1 KiB file.
	if _, err := start(65534, nil, abs("fastapp"), "--listen", ":8080"); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(dir, "index.html"), []byte(strings.Repeat("a", 1024)), 0o644)
	os.Chmod(filepath.Join(dir, "index.html"), 0o644)
	if _, err := start(65534, nil, "/usr/bin/python3", "-m", "http.server", "8081", "--directory", dir); err != nil {
		return err
	}

	// veneer's configs: TCP passthrough, the default decorations, and every
	// decoration configured but not firing.
	cfg := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	tcpCfg := cfg("tcp.yaml", "default: {protocol: tcp}\n")
	httpCfg := cfg("http.yaml", "default: {protocol: http, http: {requestId: true}}\n")
	fullCfg := cfg("full.yaml", everyDecoration)
	// veneer is a case of the agent on port with config. Its access log (on
	// by default) goes to a pipe this process drains, as a container
	// runtime reads a container's stdout.
	veneerBinary := func(binary, name string, port int, config string, flags ...string) *proxyCase {
		a := port - 15006 + 15000
		cmd := []string{binary, "--listen", fmt.Sprintf(":%d", port), "--admin", fmt.Sprintf("127.0.0.1:%d", a),
			"--admin-local", fmt.Sprintf("127.0.0.1:%d", a+3000), "--outbound-listen", "", "--config", config, "--max-connections", "0"}
		return &proxyCase{name: name, port: port, cmd: append(cmd, flags...), uid: 1337, app: "fast", stdout: io.Discard, admin: a + 3000}
	}
	veneer := func(name string, port int, config string, flags ...string) *proxyCase {
		return veneerBinary(abs("veneer-agent"), name, port, config, flags...)
	}
	pid := localpod.PodIP.String()
	// haproxy and nginx are cases of those proxies on port in front of app
	// (HAProxy in mode tcp or http; threads 0 leaves nbthread to HAProxy,
	// one per core). Neither is transparent: each instance names its app's
	// address, so the Python cases have instances of their own.
	haproxy := func(name, mode string, port int, app string, threads int) *proxyCase {
		global := "  maxconn 8000\n"
		if threads > 0 {
			global += fmt.Sprintf("  nbthread %d\n", threads)
		}
		reuse := ""
		if mode == "http" {
			reuse = "  http-reuse always\n"
		}
		conf := cfg(fmt.Sprintf("haproxy-%d.cfg", port), fmt.Sprintf("global\n%sdefaults\n  mode %s\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n%sfrontend f\n  bind :%d\n  default_backend b\nbackend b\n  server app %s:%d\n",
			global, mode, reuse, port, pid, appPort(app)))
		return &proxyCase{name: name, port: port, cmd: []string{"haproxy", "-f", conf, "-db"}, app: app}
	}
	nginx := func(name string, port int, app string) *proxyCase {
		conf := cfg(fmt.Sprintf("nginx-%d.conf", port), fmt.Sprintf("worker_processes 1;\npid %s/nginx-%d.pid;\nerror_log /dev/null;\nevents { worker_connections 20000; }\nhttp {\n  access_log off;\n  upstream app { server %s:%d; keepalive 64; }\n  server {\n    listen %d;\n    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n  }\n}\n",
			dir, port, pid, appPort(app), port))
		return &proxyCase{name: name, port: port, cmd: []string{"nginx", "-c", conf, "-g", "daemon off;"}, app: app}
	}
	// The Python case of veneer goes through the agent of the default
	// decorations, which is transparent.
	tcpDefault := veneer("veneer tcp", 15006, tcpCfg)
	httpDefault := veneer("veneer http (default decorations)", 15106, httpCfg)
	viaVeneerTCP := &proxyCase{name: "python via veneer tcp", port: 15006, app: "python"}
	viaVeneer := &proxyCase{name: "python via veneer http", port: 15106, app: "python"}
	cases := []*proxyCase{
		{name: "direct", app: "fast"},
		{name: "REDIRECT alone (no proxy)", port: 15606, cmd: []string{abs("fastapp"), "--listen", ":15606"}, uid: 65534, app: "fast", bare: true},
		tcpDefault,
		httpDefault,
		veneer("veneer http (every decoration)", 15206, fullCfg),
		haproxy("haproxy tcp", "tcp", 15306, "fast", 0),
		haproxy("haproxy http", "http", 15406, "fast", 0),
		// One HAProxy thread beside veneer's one worker.
		haproxy("haproxy tcp 1 thread", "tcp", 15906, "fast", 1),
		haproxy("haproxy http 1 thread", "http", 16006, "fast", 1),
		nginx("nginx proxy_pass", 15506, "fast"),
		{name: "python direct", app: "python"},
		viaVeneerTCP,
		viaVeneer,
		haproxy("python via haproxy tcp", "tcp", 16106, "python", 0),
		haproxy("python via haproxy http", "http", 16206, "python", 0),
		nginx("python via nginx", 16306, "python"),
	}
	// tproxy mode: the app sees the client's address, and each client
	// connection has connections to the app of its own. The agent needs
	// CAP_NET_ADMIN for them: root here, as the capabilities a pod grants.
	tproxyHTTP := veneer("veneer http (tproxy)", 17306, httpCfg, "--mode", "tproxy")
	tproxyHTTP.uid, tproxyHTTP.mode = 0, "tproxy"
	cases = append(cases, tproxyHTTP)
	if *workers2 {
		cases = append(cases, veneer("veneer tcp (2 workers)", 15706, tcpCfg, "--workers", "2"),
			veneer("veneer http (default decorations, 2 workers)", 15806, httpCfg, "--workers", "2"))
	}
	if *jaeger != "" {
		// Jaeger in the pod, on its loopback: its CPU is not the agent's,
		// which is what these cases compare (µs per request).
		conf, _ := filepath.Abs("test/tools/jaeger/config.yaml")
		j := exec.Command(*jaeger, "--config", "file:"+conf)
		j.Env = append(os.Environ(), "OTLP_ENDPOINT=127.0.0.1:4318")
		j.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := pod.Pod.Start(j, 0); err != nil {
			return fmt.Errorf("jaeger: %w", err)
		}
		procs = append(procs, j)
		traceCfg := cfg("tracing.yaml", "default: {protocol: http, http: {requestId: true, tracing: true}}\n")
		otlp := []string{"--otlp-endpoint", "http://127.0.0.1:4318", "--trace-sampling"}
		cases = append(cases, veneer("veneer http (tracing, no exporter)", 16606, traceCfg),
			veneer("veneer http (tracing, OTLP 1%)", 16706, traceCfg, append(otlp, "0.01")...),
			veneer("veneer http (tracing, OTLP 100%)", 16806, traceCfg, append(otlp, "1")...))
	}
	if *mesh {
		cases = append(cases, meshCases(dir, abs("veneer-agent"), "", 16906, cfg)...)
	}
	if *compare != "" {
		compared := veneerBinary(*compare, "compared http (tproxy)", 17406, httpCfg, "--mode", "tproxy")
		compared.uid, compared.mode = 0, "tproxy"
		cases = append(cases, veneerBinary(*compare, "compared tcp", 16406, tcpCfg),
			veneerBinary(*compare, "compared http (default decorations)", 16506, httpCfg), compared)
		if *mesh {
			cases = append(cases, meshCases(dir, *compare, "compared ", 17506, cfg)...)
		}
	}
	for _, c := range cases {
		if c.cmd == nil {
			continue
		}
		if c.proc, err = start(c.uid, c.stdout, c.cmd...); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if c.clientCmd != nil {
			if c.client, err = startIn(pod.Client, meshClientUID, io.Discard, c.clientCmd...); err != nil {
				return fmt.Errorf("%s: the client's agent: %w", c.name, err)
			}
		}
	}
	viaVeneer.proc, viaVeneerTCP.proc = httpDefault.proc, tcpDefault.proc
	time.Sleep(time.Second)
	fresh := map[*exec.Cmd]float64{} // idle before any traffic
	for _, c := range cases {
		if c.proc != nil {
			fresh[c.proc] = rssMiB(c.proc)
		}
	}
	sel, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("-cases: %w", err)
	}
	cases = slices.DeleteFunc(cases, func(c *proxyCase) bool { return !sel.MatchString(c.name) })

	capture := func(c *proxyCase) error {
		args := []string{abs("veneer-init"), "--inbound-ports", strconv.Itoa(appPort(c.app)), "--ipv6", "off"}
		if c.port == 0 {
			args = append(args, "--cleanup")
		} else {
			args = append(args, "--proxy-port", strconv.Itoa(c.port), "--admin-port", "15999")
		}
		args = append(args, "--mode", cmp.Or(c.mode, "redirect"))
		cmd := exec.Command(args[0], args[1:]...)
		out, err := runIn(pod.Pod, cmd, 0)
		if err != nil {
			return fmt.Errorf("veneer-init: %v %s", err, out)
		}
		// The client namespace: outbound capture to the client's agent
		// for a mesh case, none for the others.
		args = []string{abs("veneer-init"), "--inbound-ports", "15998", "--ipv6", "off", "--cleanup"}
		if c.client != nil {
			args = append(args[:len(args)-1], "--outbound", "--outbound-port", strconv.Itoa(c.outPort), "--admin-port", "15999",
				"--proxy-uid", strconv.Itoa(meshClientUID), "--proxy-gid", strconv.Itoa(meshClientUID))
		}
		if out, err := runIn(pod.Client, exec.Command(args[0], args[1:]...), 0); err != nil {
			return fmt.Errorf("veneer-init in the client namespace: %v %s", err, out)
		}
		// The last case's connections must not steer this one's: a SYN
		// reusing the 4-tuple of a connection still in TIME_WAIT takes
		// that connection's conntrack entry, and so the last case's
		// REDIRECT target (seen as a mesh case's handshake reaching the
		// plaintext case's agent).
		for _, ns := range []*localpod.NS{pod.Pod, pod.Client} {
			if err := ns.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) }); err != nil {
				return fmt.Errorf("flushing conntrack: %w", err)
			}
		}
		return nil
	}
	url := func(c *proxyCase, path string) string {
		return fmt.Sprintf("http://%s:%d%s", pid, appPort(c.app), path)
	}

	res := map[string]*result{}
	for _, c := range cases {
		res[c.name] = &result{}
	}
	for r := 1; r <= *rounds; r++ {
		// Each round starts one case later, so that no case always
		// follows the same one (a 1 GiB stream, a slow Python run).
		for i := range cases {
			c := cases[(i+r-1)%len(cases)]
			if err := capture(c); err != nil {
				return err
			}
			rr := res[c.name]
			var counts func() (map[string]float64, error)
			if *perfStat && c.proc != nil && !c.bare {
				if counts, err = countEvents(c.proc); err != nil {
					return fmt.Errorf("%s: perf stat: %w", c.name, err)
				}
			}
			var profiled chan error
			if *profiles != "" && c.admin != 0 {
				profiled = make(chan error, 1)
				go func() { profiled <- profile(pod, c, r) }()
			}
			cpu0, busy0 := c.cpu(), busySeconds()
			rps, requests, err := wrk(pod, url(c, "/"))
			if err != nil {
				return fmt.Errorf("%s: wrk: %w", c.name, err)
			}
			if profiled != nil {
				if err := <-profiled; err != nil {
					return fmt.Errorf("%s: profile: %w", c.name, err)
				}
			}
			if counts != nil {
				n, err := counts()
				if err != nil {
					return fmt.Errorf("%s: perf stat: %w", c.name, err)
				}
				rr.syscallsPerReq = append(rr.syscallsPerReq, n["raw_syscalls:sys_enter"]/requests)
				rr.switchesPerReq = append(rr.switchesPerReq, n["context-switches"]/requests)
				rr.machinePerReq = append(rr.machinePerReq, (busySeconds()-busy0)/requests*1e6)
			}
			rr.rps = append(rr.rps, rps)
			cpu1 := c.cpu()
			lat, err := fortio(pod, abs("fortio"), url(c, "/"))
			if err != nil {
				return fmt.Errorf("%s: fortio: %w", c.name, err)
			}
			if c.proc != nil && !c.bare {
				rr.cpuPerReq = append(rr.cpuPerReq, (cpu1-cpu0)/requests*1e6)
				rr.cpuPer1k = append(rr.cpuPer1k, (c.cpu()-cpu1)/duration.Seconds())
			}
			if c.client != nil {
				// A new connection per request: a handshake (resumed, as the
				// client's agent keeps sessions) on every one.
				cpu2 := c.cpu()
				cps, conns, err := wrk(pod, url(c, "/"), "-H", "Connection: close")
				if err != nil {
					return fmt.Errorf("%s: wrk, new connections: %w", c.name, err)
				}
				rr.connPerSec = append(rr.connPerSec, cps)
				rr.cpuPerConn = append(rr.cpuPerConn, (c.cpu()-cpu2)/conns*1e6)
			}
			rr.p50, rr.p90, rr.p99 = append(rr.p50, lat[0]), append(rr.p90, lat[1]), append(rr.p99, lat[2])
			if c.app == "fast" {
				mbps, err := stream(pod, url(c, "/big?size=1073741824"))
				if err != nil {
					return fmt.Errorf("%s: stream: %w", c.name, err)
				}
				rr.streamMBps = append(rr.streamMBps, mbps)
			}
			fmt.Fprintf(os.Stderr, "round %d %-36s %8.0f req/s  p50 %.3f ms\n", r, c.name, rps, lat[0])
		}
	}
	// Memory: idle, and with 1,000 idle keep-alive client connections.
	for _, c := range cases {
		if c.proc == nil || c.bare || c.app != "fast" {
			continue
		}
		if err := capture(c); err != nil {
			return err
		}
		res[c.name].rssFresh = fresh[c.proc]
		res[c.name].rssIdle = rssMiB(c.proc) // idle again, after the rounds
		closeAll := holdConnections(pod, url(c, "/"), 1000)
		res[c.name].rss1k = rssMiB(c.proc)
		closeAll()
	}
	capture(&proxyCase{}) // no capture left behind
	report(cases, res)
	return nil
}

func runIn(ns *localpod.NS, cmd *exec.Cmd, id uint32) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := ns.Run(cmd, id)
	return out.String(), err
}

// appPort is where app listens in the pod: the fast one or the Python one.
func appPort(app string) int {
	if app == "python" {
		return 8081
	}
	return 8080
}

var (
	rpsRE      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	requestsRE = regexp.MustCompile(`([0-9]+) requests in`)
)

// wrk is maximum throughput: 2 threads, 64 keep-alive connections (unless
// extra says otherwise). It returns requests per second and the requests
// served.
func wrk(pod *localpod.Pod, url string, extra ...string) (rps, requests float64, err error) {
	args := append([]string{"-t2", "-c64", "-d" + duration.String()}, extra...)
	out, err := runIn(pod.Client, exec.Command("wrk", append(args, url)...), 0)
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, out)
	}
	m, n := rpsRE.FindStringSubmatch(out), requestsRE.FindStringSubmatch(out)
	if m == nil || n == nil || strings.Contains(out, "Non-2xx") {
		return 0, 0, fmt.Errorf("wrk: %s", out)
	}
	if i := strings.Index(out, "Socket errors"); i >= 0 {
		// The Python server times out a few of 64 connections by itself.
		fmt.Fprintf(os.Stderr, "  (%s)\n", strings.TrimSpace(strings.SplitN(out[i:], "\n", 2)[0]))
	}
	rps, _ = strconv.ParseFloat(m[1], 64)
	requests, _ = strconv.ParseFloat(n[1], 64)
	return rps, requests, nil
}

// fortio is the latency at a fixed 1,000 requests/s: p50, p90, p99 in ms.
func fortio(pod *localpod.Pod, fortio, url string) ([3]float64, error) {
	cmd := exec.Command(fortio, "load", "-quiet", "-qps", "1000", "-c", "16", "-t", duration.String(), "-json", "-", url)
	var stdout strings.Builder
	cmd.Stdout = &stdout // the JSON; the summary on stderr is not wanted
	if err := pod.Client.Run(cmd, 0); err != nil {
		return [3]float64{}, fmt.Errorf("%v: %.500s", err, stdout.String())
	}
	out := stdout.String()
	var r struct {
		DurationHistogram struct {
			Percentiles []struct {
				Percentile float64
				Value      float64
			}
		}
		RetCodes map[string]int
	}
	if i := strings.Index(out, "{"); i >= 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return [3]float64{}, fmt.Errorf("fortio output: %v", err)
	}
	var v [3]float64
	for _, p := range r.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			v[0] = p.Value * 1000
		case 90:
			v[1] = p.Value * 1000
		case 99:
			v[2] = p.Value * 1000
		}
	}
	return v, nil
}

// stream is the throughput of one 1 GiB response, in MB/s.
func stream(pod *localpod.Pod, url string) (float64, error) {
	out, err := runIn(pod.Client, exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url), 0)
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var size, secs float64
	fmt.Sscan(out, &size, &secs)
	if size != 1<<30 {
		return 0, fmt.Errorf("downloaded %v bytes", size)
	}
	return size / secs / 1e6, nil
}

// holdConnections opens n keep-alive connections from the client namespace,
// one request each, and keeps them open until the returned func.
func holdConnections(pod *localpod.Pod, url string, n int) func() {
	var clients []*http.Client
	for i := 0; i < n; i++ {
		c := &http.Client{Transport: &http.Transport{DialContext: pod.Client.DialContext}}
		if resp, err := c.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		clients = append(clients, c)
	}
	time.Sleep(500 * time.Millisecond)
	return func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}
}

// profile writes a CPU profile of veneer case c for about a wrk run, from
// its admin port, to -profile's folder as "NAME-ROUND.pprof".
func profile(pod *localpod.Pod, c *proxyCase, round int) error {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, c.name)
	secs := max(1, int(duration.Seconds()))
	get := func(ns *localpod.NS, admin int, suffix string) error {
		path, _ := filepath.Abs(filepath.Join(*profiles, fmt.Sprintf("%s%s-%d.pprof", name, suffix, round)))
		out, err := runIn(ns, exec.Command("curl", "-sf", "-o", path,
			fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", admin, secs)), 0)
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	}
	if c.client == nil {
		return get(pod.Pod, c.admin, "")
	}
	client := make(chan error, 1)
	go func() { client <- get(pod.Client, c.admin+1, "-client") }() // the mesh case's client agent
	return errors.Join(get(pod.Pod, c.admin, ""), <-client)
}

// countEvents starts perf stat on a proxy's processes (every thread) for
// about the length of a wrk run; the function it returns waits for it and
// gives its counts by event.
func countEvents(c *exec.Cmd) (func() (map[string]float64, error), error) {
	var pids []string
	for _, p := range tree(c.Process.Pid) {
		pids = append(pids, strconv.Itoa(p))
	}
	var out strings.Builder
	cmd := exec.Command("perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches", "-p", strings.Join(pids, ","),
		"--", "sleep", strconv.FormatFloat(duration.Seconds(), 'f', 3, 64))
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() (map[string]float64, error) {
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("%v: %s", err, out.String())
		}
		n := map[string]float64{}
		for _, line := range strings.Split(out.String(), "\n") {
			// value,unit,event,...
			if f := strings.Split(line, ","); len(f) >= 3 {
				if v, err := strconv.ParseFloat(f[0], 64); err == nil {
					n[f[2]] = v
				}
			}
		}
		return n, nil
	}, nil
}

// busySeconds is the time every core has been busy (not idle, not waiting
// for I/O): the client's, the proxy's, the app's and the kernel's work.
func busySeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	busy := 0.0
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is in user already
			busy += v
		}
	}
	return busy / 100 // USER_HZ
}

// cpuSeconds is the CPU time of a process and its children (nginx's and
// haproxy's workers), from /proc.
func cpuSeconds(c *exec.Cmd) float64 {
	if c == nil {
		return 0
	}
	total := 0.0
	for _, pid := range tree(c.Process.Pid) {
		// Every thread's time on a CPU, in nanoseconds (the first field
		// of its schedstat): /proc/PID/stat counts in 10 ms ticks, too
		// coarse for a proxy using 40 ms a second. (A thread that exits
		// takes its time along; the proxies measured here keep theirs.)
		threads, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, t := range threads {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseFloat(f[0], 64)
				total += ns / 1e9
			}
		}
	}
	return total
}

// rssMiB is the resident memory of a process and its children.
func rssMiB(c *exec.Cmd) float64 {
	total := 0.0
	for _, pid := range tree(c.Process.Pid) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				total += kb / 1024
			}
		}
		f.Close()
	}
	return total
}

func tree(root int) []int {
	pids := []int{root}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == root {
			pids = append(pids, pid)
		}
	}
	return pids
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(cases []*proxyCase, res map[string]*result) {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s*:\s*(.*)`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	relb, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	rel := strings.TrimSpace(string(relb))
	fmt.Printf("Machine: %d cores (%s), Linux %s, %s; client (wrk, fortio), proxy and app share the cores.\n", runtime.NumCPU(), cpu, rel, runtime.Version())
	fmt.Printf("Medians of %d interleaved rounds; wrk -t2 -c64 -d%s; latency with fortio at 1,000 req/s (16 connections, %s); CPU of the proxy during that run, and per request during the wrk run; 1 KiB responses; veneer logs each request (its default; stdout to a drained pipe, as in a container), HAProxy and nginx log nothing.\n\n", *rounds, *duration, *duration)
	fmt.Println("| case | req/s (wrk) | of direct | p50 ms | p90 ms | p99 ms | added p50 ms | proxy CPU (cores) at 1k req/s | proxy CPU µs per request (wrk) | RSS idle MiB: fresh / after load | RSS 1k conns MiB | 1 GiB stream MB/s | of direct |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	base := map[string]*result{"fast": res["direct"], "python": res["python direct"]}
	for _, c := range cases {
		r, b := res[c.name], base[c.app]
		if b == nil {
			b = &result{} // its direct case not measured: ratios print NaN
		}
		row := fmt.Sprintf("| %s | %.0f | %.2f | %.3f | %.3f | %.3f | %+.3f | ", c.name, median(r.rps), median(r.rps)/median(b.rps),
			median(r.p50), median(r.p90), median(r.p99), median(r.p50)-median(b.p50))
		if c.proc != nil && !c.bare {
			row += fmt.Sprintf("%.3f | %.1f | ", median(r.cpuPer1k), median(r.cpuPerReq))
		} else {
			row += "- | - | "
		}
		if r.rssIdle > 0 {
			row += fmt.Sprintf("%.1f / %.1f | %.1f | ", r.rssFresh, r.rssIdle, r.rss1k)
		} else {
			row += "- | - | "
		}
		if len(r.streamMBps) > 0 {
			row += fmt.Sprintf("%.0f | %.2f |", median(r.streamMBps), median(r.streamMBps)/median(b.streamMBps))
		} else {
			row += "- | - |"
		}
		fmt.Println(row)
	}
	if t, r := res["veneer http (tproxy)"], res["veneer http (default decorations)"]; t != nil && r != nil && len(t.cpuPerReq) > 0 && len(r.cpuPerReq) > 0 {
		fmt.Printf("\ntproxy mode against redirect mode, HTTP with the default decorations: %.2f× CPU per request, %.2f× the throughput.\n",
			median(t.cpuPerReq)/median(r.cpuPerReq), median(t.rps)/median(r.rps))
	}
	meshReport(cases, res)
	if !*perfStat {
		return
	}
	fmt.Print("\nperf stat on each proxy's processes during the wrk run, per request served:\n\n")
	fmt.Println("| case | syscalls per request | context switches per request | machine CPU µs per request (client, proxy, app, kernel) |")
	fmt.Println("| --- | --- | --- | --- |")
	for _, c := range cases {
		if r := res[c.name]; len(r.syscallsPerReq) > 0 {
			fmt.Printf("| %s | %.2f | %.3f | %.1f |\n", c.name, median(r.syscallsPerReq), median(r.switchesPerReq), median(r.machinePerReq))
		}
	}
}
