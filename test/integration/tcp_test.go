//go:build linux

package integration

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TCP passthrough moves bulk both ways intact through the real capture (the
// agent splices transfers that fill its copy buffer): the client uploads
// 64 MiB and half-closes, the app answers with the upload's hash and then
// 64 MiB of its own, and closes; the agent counts every byte.
func TestTCPBulkBothWays(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	const size = 64 << 20
	download := make([]byte, size)
	rand.Read(download)
	p.servePod(":9090", func(c net.Conn) {
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c) // until the client's half-close
		io.WriteString(c, hex.EncodeToString(h.Sum(nil)))
		c.Write(download)
	})
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--config", p.writeConfig("default: {protocol: tcp}\n"))

	c := p.mustDial(9090, 10*time.Second)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	upload := make([]byte, size)
	rand.Read(upload)
	if _, err := c.Write(upload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(upload)
	if want := hex.EncodeToString(sum[:]); len(reply) < len(want) || string(reply[:len(want)]) != want {
		t.Fatalf("the app hashed the upload otherwise (got %d bytes back)", len(reply))
	}
	if got := reply[sha256.Size*2:]; sha256.Sum256(got) != sha256.Sum256(download) {
		t.Fatalf("downloaded %d bytes that differ from the app's %d", len(got), size)
	}
	p.waitFor("the connection counted", func() bool { return p.metric("veneer_tcp_connections_closed_total", "9090") == 1 })
	for name, want := range map[string]int{
		"veneer_tcp_received_bytes_total": size,
		"veneer_tcp_sent_bytes_total":     len(reply),
	} {
		if got := p.metric(name, "9090"); got != float64(want) {
			t.Errorf("%s = %v; want %d", name, got, want)
		}
	}
}

// A passthrough connection on which nothing moves is closed after the
// port's tcp.idleTimeout, both ways, and the agent logs why; one that keeps
// talking is not. The timeout is 20 times the busy connection's pause
// between pings: CI runs this beside every other test under the race
// detector, and a 1 s timeout once closed the busy one there.
func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	p := newPod(t)
	p.servePod(":9090", echoConn)
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent("--config", p.writeConfig("default: {protocol: tcp, tcp: {idleTimeout: 2s}}\n"))

	busy := p.mustDial(9090, 10*time.Second)
	defer busy.Close()
	last, longest := time.Now(), time.Duration(0) // the busy one's longest pause
	quiet := p.mustDial(9090, 10*time.Second)
	defer quiet.Close()
	quiet.SetDeadline(time.Now().Add(20 * time.Second))
	ping(t, quiet)
	closed := make(chan error, 1)
	go func() { _, err := io.ReadAll(quiet); closed <- err }()
	for end := time.Now().Add(2*timeout + 500*time.Millisecond); time.Now().Before(end); {
		if err := pingErr(busy); err != nil {
			t.Fatalf("the busy connection, after %v without a ping at most: %v", longest, err)
		}
		longest, last = max(longest, time.Since(last)), time.Now()
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-closed; err != nil {
		t.Fatalf("the quiet connection: %v; want it closed by the agent", err)
	}
	p.waitFor("the idle end logged", func() bool { return strings.Contains(agent.log.String(), `"end":"idle_timeout"`) })
	if n := strings.Count(agent.log.String(), `"end":"idle_timeout"`); n != 1 {
		t.Errorf("%d connections logged as idle_timeout; want 1 (the quiet one)", n)
	}
}

// With no idle timeout (the default), dead peers are left to TCP keepalive:
// both of the agent's sockets of a passthrough connection have it on.
func TestTCPKeepAliveBothSides(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.servePod(":9090", echoConn)
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--config", p.writeConfig("default: {protocol: tcp}\n"))
	c := p.mustDial(9090, 10*time.Second)
	defer c.Close()
	ping(t, c)
	var out strings.Builder
	cmd := exec.Command("ss", "-tnoH", "state", "established")
	cmd.Stdout = &out
	if err := p.Pod.Pod.Run(cmd, 0); err != nil {
		t.Fatalf("ss: %v", err)
	}
	var fromClient, toApp bool
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l) // Recv-Q Send-Q Local Peer [timer]
		if len(f) < 4 {
			continue
		}
		keep := strings.Contains(l, "timer:(keepalive")
		switch {
		case strings.HasSuffix(f[2], ":15006"):
			fromClient = keep
		case strings.HasSuffix(f[3], ":9090"):
			toApp = keep
		}
	}
	if !fromClient || !toApp {
		t.Errorf("keepalive on the agent's client socket %v, app socket %v; want both on:\n%s", fromClient, toApp, out.String())
	}
}

// echoConn is an app that sends back what it reads, until the client's EOF.
func echoConn(c net.Conn) {
	io.Copy(c, c)
	c.Close()
}

// ping sends "ping" on c and waits for it to come back.
func ping(t *testing.T, c net.Conn) {
	t.Helper()
	if err := pingErr(c); err != nil {
		t.Fatal(err)
	}
}

func pingErr(c net.Conn) error {
	if _, err := io.WriteString(c, "ping"); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 4))
	return err
}
