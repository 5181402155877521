//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// The mTLS tests' workloads, each under a UID of its own that SPIRE's unix
// attestor tells apart.
const (
	serverUID   = 1337 // the server pod's agent
	clientUID   = 1338 // the client pod's agent; its connections bypass the client pod's capture
	intruderUID = 1339 // a workload with an SVID of the trust domain, outside the rules
)

// meshPods is a server pod (the pod namespace: veneer-init, an agent, the
// seed's app and echo servers) and a client pod (the client namespace:
// veneer-init with outbound capture and an agent of its own), with mTLS
// between their agents and SVIDs from a real SPIRE.
type meshPods struct {
	*pod
	spire                    *spire
	serverAgent, clientAgent *proc
	serverID                 string
	clientID                 string
	app                      *proc
}

const meshServerConfig = `
default:
  mtls: strict
ports:
  "8080":
    protocol: http
    http:
      authz:
        default: deny
        rules:
        - {action: allow, principals: ["spiffe://veneer.test/ns/shop/*"]}
  "9001":
    protocol: tcp
    mtls: permissive
`

func newMeshPods(t *testing.T) *meshPods {
	t.Helper()
	requireTool(t, "openssl", "curl")
	sp := startSPIRE(t, "veneer.test")
	m := &meshPods{pod: newPod(t), spire: sp}
	m.serverID = sp.Entry("/ns/shop/sa/web", serverUID, 60)
	m.clientID = sp.Entry("/ns/shop/sa/client", clientUID, 60)

	// The server pod: the seed's app on 8080, an echo on 9000 and 9001, a
	// server-first greeter on 9003, h2c on 9004, a WebSocket echo on 9005.
	m.mustInit("--inbound-ports", "8080,9000,9001,9003,9004,9005")
	m.app = m.startApp("")
	for _, port := range []string{"9000", "9001"} {
		m.serve(port, func(c net.Conn) { io.Copy(c, c); c.(*net.TCPConn).CloseWrite() })
	}
	m.serve("9003", func(c net.Conn) { c.Write([]byte("220 greetings from a server-first app\r\n")); io.Copy(c, c) })
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	h2l, _ := m.Pod.Pod.Listen("tcp", ":9004")
	h2srv := &http.Server{Protocols: h2c, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "h2c %s", r.Proto)
	})}
	go h2srv.Serve(h2l)
	t.Cleanup(func() { h2srv.Close() })
	m.serve("9005", wsEcho)
	// The app's probes as veneerctl inject hands them over in strict mode.
	probes := `{"/app-health/app/readyz":{"httpGet":{"path":"/","port":8080}},"/app-health/app/livez":{"tcpSocket":{"port":8080}},` +
		`"/app-health/gone/readyz":{"httpGet":{"path":"/","port":8089}}}`
	m.serverAgent = m.startAgent("--spiffe-socket", "unix://"+sp.agentSock, "--config", m.writeConfig(meshServerConfig), "--app-probes", probes)

	// The client pod.
	cmd := exec.Command(filepath.Join(bin, "veneer-init"), "--outbound", "--inbound-ports", "15999",
		"--proxy-uid", fmt.Sprint(clientUID), "--proxy-gid", fmt.Sprint(clientUID))
	if out, err := m.runIn(m.Client, 0, cmd); err != nil {
		t.Fatalf("veneer-init in the client pod: %v\n%s", err, out)
	}
	m.clientAgent = m.startIn(m.Client, clientUID, nil, filepath.Join(bin, "veneer-agent"), "--spiffe-socket", sp.agentSock,
		"--config", m.writeConfig(fmt.Sprintf("mesh:\n  peers:\n  - cidrs: [%s/32]\n    principals: [%q]\n", localpod.PodIP, m.serverID)))
	m.waitReady(m.Client)
	return m
}

// serve runs handle for each connection to port in the server pod.
func (m *meshPods) serve(port string, handle func(net.Conn)) {
	m.t.Helper()
	l, err := m.Pod.Pod.Listen("tcp", ":"+port)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
}

// wsEcho answers a WebSocket upgrade, then echoes the bytes that follow.
func wsEcho(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		return
	}
	c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"))
	io.Copy(c, br)
}

// runIn runs cmd inside ns as id and returns its output.
func (m *meshPods) runIn(ns *localpod.NS, id uint32, cmd *exec.Cmd) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := ns.Run(cmd, id)
	return out.String(), err
}

// waitReady waits until the agent in ns answers /ready with 200.
func (m *meshPods) waitReady(ns *localpod.NS) {
	m.t.Helper()
	m.waitFor("agent ready", func() bool { return m.readyIn(ns) == http.StatusOK })
}

func (m *meshPods) readyIn(ns *localpod.NS) int {
	resp, err := m.client(ns).Get("http://127.0.0.1:15000/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// appGet is the client pod's app calling the server pod: curl, as the
// app's user, through the client pod's capture.
func (m *meshPods) appGet(path string) (string, error) {
	cmd := exec.Command("curl", "-sS", "--max-time", "10", fmt.Sprintf("http://%s:8080%s", localpod.PodIP, path))
	return m.runIn(m.Client, 65534, cmd)
}

// outsider runs cmd in the client namespace as the client agent's UID,
// which the capture lets by: a client outside the mesh.
func (m *meshPods) outsider(cmd *exec.Cmd) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Stdin = cmd.Stdin
	return m.runIn(m.Client, clientUID, c)
}

// mtlsClient speaks mTLS to the server pod with the SVID in dir, without an
// agent (openssl s_client, offering veneer's ALPN), and sends req.
func (m *meshPods) mtlsClient(dir, req string) (string, error) {
	cmd := exec.Command("openssl", "s_client", "-quiet", "-connect", fmt.Sprintf("%s:8080", localpod.PodIP), "-alpn", "veneer-mtls/1",
		"-cert", filepath.Join(dir, "tls.crt"), "-key", filepath.Join(dir, "tls.key"))
	cmd.Stdin = strings.NewReader(req)
	return m.outsider(cmd)
}

func TestMTLSWithSPIRE(t *testing.T) {
	t.Parallel()
	m := newMeshPods(t)

	t.Run("the wire carries TLS, the server knows the client", func(t *testing.T) {
		wire := m.capture(m.Pod.Pod, "vnr"+m.Name+"p")
		body, err := m.appGet("/")
		seen := wire()
		if err != nil || body != "hello from the unmodified app\n" {
			t.Fatalf("the client app's GET = %q, %v", body, err)
		}
		if bytes.Contains(seen, []byte("GET /")) || bytes.Contains(seen, []byte("hello from the unmodified")) {
			t.Errorf("plaintext on the veth between the pods (%d bytes captured)", len(seen))
		}
		if !bytes.Contains(seen, []byte{0x17, 0x03, 0x03}) {
			t.Errorf("no TLS application data on the veth (%d bytes captured)", len(seen))
		}
		m.logged(m.serverAgent, `"peer_principal":"`+m.clientID+`"`, 1)
		m.logged(m.clientAgent, `"direction":"outbound"`, 1)
		if !strings.Contains(m.serverAgent.log.String(), `"tls":true`) {
			t.Error("the server's access log says nothing of TLS")
		}
		if n := m.requestsTLS(m.Pod.Pod, "inbound", "true"); n < 1 {
			t.Errorf("veneer_requests_total{direction=inbound,tls=true} = %v", n)
		}
	})

	// The seed's client opens a connection per request; the client's agent
	// carries them over mTLS connections pooled per peer, so they cost one
	// handshake per pooled connection, not one each (issue 28).
	t.Run("new client connections share pooled mTLS connections", func(t *testing.T) {
		before := m.handshakes(m.Pod.Pod, "inbound")
		for i := range 20 {
			if body, err := m.appGet("/"); err != nil || !strings.Contains(body, "hello") {
				t.Fatalf("request %d: %q, %v", i, body, err)
			}
		}
		if n := m.handshakes(m.Pod.Pod, "inbound") - before; n > 1 {
			t.Errorf("20 client connections, one after another, cost the server's agent %v handshakes; want at most 1", n)
		}
		m.logged(m.serverAgent, `"peer_principal":"`+m.clientID+`"`, 21)
	})

	t.Run("principals: the client in, an intruder of the trust domain out", func(t *testing.T) {
		intruder := m.spire.Entry("/ns/other/sa/intruder", intruderUID, 60)
		dir := m.spire.SVIDFiles(intruderUID)
		chownAll(t, dir, clientUID)
		out, _ := m.mtlsClient(dir, "GET /intruder HTTP/1.0\r\n\r\n")
		if !strings.Contains(out, "403 Forbidden") {
			t.Errorf("the intruder %s got %q; want 403", intruder, out)
		}
		m.logged(m.serverAgent, `"peer_principal":"`+intruder+`"`, 1)
		if strings.Contains(m.app.log.String(), "/intruder") {
			t.Error("the app saw the intruder's request")
		}
	})

	t.Run("strict refuses plaintext, permissive takes it", func(t *testing.T) {
		out, err := m.outsider(exec.Command("curl", "-sS", "--max-time", "5", fmt.Sprintf("http://%s:8080/", localpod.PodIP)))
		if err == nil || strings.Contains(out, "hello") {
			t.Errorf("plaintext to a strict port: %q, %v; want the connection refused", out, err)
		}
		m.logged(m.serverAgent, `"end":"mtls_required"`, 1)
		py := `import socket; s=socket.create_connection(("` + localpod.PodIP.String() + `", 9001), 5); s.sendall(b"plain ping"); s.shutdown(1); print(s.recv(100).decode())`
		if out, err := m.outsider(exec.Command(python3(t), "-c", py)); err != nil || strings.TrimSpace(out) != "plain ping" {
			t.Errorf("plaintext to a permissive port: %q, %v", out, err)
		}
		if got := m.echoOver(9001, []byte("meshed ping")); got != "meshed ping" {
			t.Errorf("mTLS to a permissive port: %q", got)
		}
	})

	t.Run("the kubelet's probes pass a strict port", func(t *testing.T) {
		// The kubelet is a plaintext client outside the mesh, as the
		// outsider is; inject moved the probes to the agent's admin port.
		for path, want := range map[string]string{"/app-health/app/readyz": "200", "/app-health/app/livez": "200", "/app-health/gone/readyz": "503"} {
			out, _ := m.outsider(exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
				fmt.Sprintf("http://%s:15000%s", localpod.PodIP, path)))
			if out != want {
				t.Errorf("probe %s: %q, want %s", path, out, want)
			}
		}
	})

	t.Run("another trust domain is refused", func(t *testing.T) {
		other := startSPIRE(t, "other.test")
		other.Entry("/ns/shop/sa/client", intruderUID, 60)
		dir := other.SVIDFiles(intruderUID)
		chownAll(t, dir, clientUID)
		out, _ := m.mtlsClient(dir, "GET /stranger HTTP/1.0\r\n\r\n")
		if strings.Contains(out, "HTTP/1") {
			t.Errorf("a client of other.test got an answer: %q", out)
		}
		m.logged(m.serverAgent, `mtls_handshake_failed`, 1)
	})

	t.Run("server-first, WebSocket, h2c and 100 MiB each way", func(t *testing.T) {
		c := m.dialFromApp(9003)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "220 greetings") {
			t.Errorf("server-first over mTLS: %q, %v", line, err)
		}
		c.Close()

		ws := m.dialFromApp(9005)
		fmt.Fprintf(ws, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(ws)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("WebSocket upgrade over mTLS: %v, %v", resp, err)
		}
		ws.Write([]byte("frame"))
		got := make([]byte, 5)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "frame" {
			t.Errorf("WebSocket bytes over mTLS: %q, %v", got, err)
		}
		ws.Close()

		h2 := new(http.Protocols)
		h2.SetUnencryptedHTTP2(true)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: h2, DialContext: m.Client.DialContext}}
		r, err := hc.Get(fmt.Sprintf("http://%s:9004/", localpod.PodIP))
		if err != nil {
			t.Fatalf("h2c over mTLS: %v", err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.Proto != "HTTP/2.0" || string(b) != "h2c HTTP/2.0" {
			t.Errorf("h2c over mTLS: %s %q", r.Proto, b)
		}

		big := make([]byte, 100<<20)
		rand.Read(big)
		s := m.dialFromApp(9000)
		s.SetDeadline(time.Now().Add(2 * time.Minute))
		sum := make(chan [32]byte)
		go func() {
			h := sha256.New()
			io.Copy(h, s)
			sum <- [32]byte(h.Sum(nil))
		}()
		if _, err := s.Write(big); err != nil {
			t.Fatal(err)
		}
		s.(*net.TCPConn).CloseWrite()
		if <-sum != sha256.Sum256(big) {
			t.Error("100 MiB through mTLS came back changed")
		}
		s.Close()
	})

	t.Run("rotation under keep-alive load", func(t *testing.T) {
		load := m.keepAliveLoad(4)
		deadline := time.Now().Add(45 * time.Second)
		for !(strings.Contains(m.serverAgent.log.String(), "SVID rotated") && strings.Contains(m.clientAgent.log.String(), "SVID rotated")) {
			if time.Now().After(deadline) {
				t.Fatal("no rotation within 45s (SVID TTL 60s)")
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // requests on both sides of the rotation
		for _, a := range []*proc{m.serverAgent, m.clientAgent} {
			for _, l := range strings.Split(a.log.String(), "\n") {
				var r struct {
					Message        string `json:"message"`
					Serial         string `json:"serial"`
					PreviousSerial string `json:"previous_serial"`
				}
				if json.Unmarshal([]byte(l), &r) == nil && r.Message == "SVID rotated" && r.Serial == r.PreviousSerial {
					t.Errorf("rotated to the same serial %s: %s", r.Serial, l)
				}
			}
		}
		ok, failed := load()
		if failed != 0 || ok < 100 {
			t.Errorf("across the rotation: %d requests answered, %d failed; want 0 failed", ok, failed)
		}
		t.Logf("across the rotation: %d requests, 0 failed", ok)
	})

	t.Run("the SPIRE agent killed", func(t *testing.T) {
		load := m.keepAliveLoad(2)
		m.spire.KillAgent()
		time.Sleep(2 * time.Second)
		for i := range 10 { // new connections: new handshakes, on the cached SVIDs
			if body, err := m.appGet("/"); err != nil || !strings.Contains(body, "hello") {
				t.Fatalf("new connection %d with SPIRE's agent down: %q, %v", i, body, err)
			}
		}
		if ok, failed := load(); failed != 0 {
			t.Errorf("keep-alive connections with SPIRE's agent down: %d answered, %d failed", ok, failed)
		}
		// The SVIDs run out: handshakes fail closed, and /ready says so.
		left := m.metricDir("veneer_svid_expiry_seconds", "", "") // no labels
		t.Logf("waiting %.0fs for the SVIDs to expire", left)
		time.Sleep(time.Duration(left*float64(time.Second)) + 2*time.Second)
		if m.readyIn(m.Pod.Pod) == http.StatusOK {
			t.Error("the server's agent is ready with an expired SVID")
		}
		if body, err := m.appGet("/"); err == nil && strings.Contains(body, "hello") {
			t.Error("a handshake succeeded with expired SVIDs")
		}
	})

	t.Run("an agent with no SVID yet is not ready", func(t *testing.T) {
		m.spire.StartAgent()
		p := newPod(t)
		a := p.startIn(p.Pod.Pod, 1340, nil, filepath.Join(bin, "veneer-agent"), "--spiffe-socket", m.spire.agentSock, "--mtls", "strict")
		time.Sleep(3 * time.Second)
		resp, err := p.client(p.Pod.Pod).Get("http://127.0.0.1:15000/ready")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "SVID") {
			t.Errorf("/ready with no SVID: %d %q; want 503 waiting for an SVID", resp.StatusCode, b)
		}
		m.spire.Entry("/ns/shop/sa/late", 1340, 60)
		p.logged(a, "SVID received", 1)
		p.waitFor("ready once the SVID came", func() bool { return (&meshPods{pod: p}).readyIn(p.Pod.Pod) == http.StatusOK })
	})
}

// dialFromApp connects from the client pod to the server pod's port, as the
// app would: through the capture, the client's agent and mTLS.
func (m *meshPods) dialFromApp(port int) net.Conn {
	m.t.Helper()
	c, err := m.Client.DialContext(context.Background(), "tcp", fmt.Sprintf("%s:%d", localpod.PodIP, port))
	if err != nil {
		m.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// echoOver sends msg to an echo port from the client pod's app side and
// returns what came back.
func (m *meshPods) echoOver(port int, msg []byte) string {
	c := m.dialFromApp(port)
	defer c.Close()
	c.Write(msg)
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	return string(b)
}

// keepAliveLoad sends GETs from the client pod on n keep-alive connections
// until the returned function is called, which says how many were answered
// and how many failed.
func (m *meshPods) keepAliveLoad(n int) func() (ok, failed int64) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: m.Client.DialContext, MaxIdleConnsPerHost: n}}
	var okN, failN atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Get(fmt.Sprintf("http://%s:8080/", localpod.PodIP))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failN.Add(1)
					m.t.Logf("request failed: %v %v", err, resp)
				} else {
					okN.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return func() (int64, int64) {
		close(stop)
		wg.Wait()
		hc.CloseIdleConnections()
		return okN.Load(), failN.Load()
	}
}

// requestsTLS sums veneer_requests_total of the agent in ns for a
// direction and tls label.
func (m *meshPods) requestsTLS(ns *localpod.NS, direction, tls string) float64 {
	m.t.Helper()
	sum := 0.0
	for _, s := range m.familiesIn(ns)["veneer_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["direction"] == direction && labels["tls"] == tls {
			sum += s.GetCounter().GetValue()
		}
	}
	return sum
}

// handshakes is veneer_mtls_handshakes_total of the agent in ns for a
// direction, resumed or not.
func (m *meshPods) handshakes(ns *localpod.NS, direction string) float64 {
	m.t.Helper()
	sum := 0.0
	for _, s := range m.familiesIn(ns)["veneer_mtls_handshakes_total"].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "direction" && l.GetValue() == direction {
				sum += s.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// capture records the bytes of the frames on link inside ns (an AF_PACKET
// socket, as tcpdump opens) until the returned function is called, which
// returns them.
func (p *pod) capture(ns *localpod.NS, link string) func() []byte {
	p.t.Helper()
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		p.t.Fatalf("capturing on %s: %v", link, err)
	}
	var mu sync.Mutex
	var seen []byte
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for !stop.Load() {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == nil && n > 0 {
				mu.Lock()
				seen = append(seen, buf[:n]...)
				mu.Unlock()
			}
		}
	}()
	return func() []byte {
		stop.Store(true)
		<-done
		unix.Close(fd)
		return seen
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// chownAll gives dir and its files to uid.
func chownAll(t *testing.T, dir string, uid int) {
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Chown(p, uid, uid)
		}
		return nil
	})
}
