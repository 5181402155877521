//go:build linux

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TCP passthrough moves bulk both ways intact through the real capture (the
// agent splices transfers that fill its copy buffer): the client uploads
// 64 MiB and half-closes, the app answers with the upload's hash and then
// 64 MiB of its own, and closes; the agent counts every byte. Both streams
// are generated as they are sent and hashed as they arrive: buffers of
// that size would make this test process's garbage collections long
// enough to hold up the timers of the tests running beside it (one
// 381 MB heap took 2.2 s to mark; golang/go#45632).
func TestTCPBulkBothWays(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	const size = 64 << 20
	stream := func(seed byte) io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{seed}), size) }
	p.servePod(":9090", func(c net.Conn) {
		defer c.Close()
		sum, _ := sha256Of(c) // the client's upload, until its half-close
		io.WriteString(c, sum)
		io.Copy(c, stream(2))
	})
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--config", p.writeConfig("default: {protocol: tcp}\n"))

	c := p.mustDial(9090, 10*time.Second)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.Copy(c, stream(1)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	hash := make([]byte, sha256.Size*2)
	if _, err := io.ReadFull(c, hash); err != nil {
		t.Fatalf("the upload's hash: %v", err)
	}
	if want, _ := sha256Of(stream(1)); string(hash) != want {
		t.Fatalf("the app hashed the upload as %s; want %s", hash, want)
	}
	got, n := sha256Of(c)
	if want, _ := sha256Of(stream(2)); got != want || n != size {
		t.Fatalf("downloaded %d bytes hashing to %s; want the app's %d, %s", n, got, size, want)
	}
	p.waitFor("the connection counted", func() bool { return p.metric("veneer_tcp_connections_closed_total", "9090") == 1 })
	for name, want := range map[string]int{
		"veneer_tcp_received_bytes_total": size,
		"veneer_tcp_sent_bytes_total":     len(hash) + size,
	} {
		if got := p.metric(name, "9090"); got != float64(want) {
			t.Errorf("%s = %v; want %d", name, got, want)
		}
	}
}

// sha256Of reads r to its end and returns the hash of what it read and
// how many bytes that was.
func sha256Of(r io.Reader) (string, int64) {
	h := sha256.New()
	n, _ := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n
}

// A passthrough connection on which nothing moves is closed after the
// port's tcp.idleTimeout, both ways, and the agent logs why; one that keeps
// talking is not. The timeout is 20 times the busy connection's pause
// between pings, so that the client held up for a while (CI runs this beside
// every other test, under the race detector) does not go quiet; a failure
// says how long the client itself paused.
func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	p := newPod(t)
	p.servePod(":9090", echoConn)
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent("--config", p.writeConfig(fmt.Sprintf("default: {protocol: tcp, tcp: {idleTimeout: %v}}\n", timeout)))

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
			t.Fatalf("the busy connection, %v after its last ping (before, %v at most between pings): %v", time.Since(last), longest, err)
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
