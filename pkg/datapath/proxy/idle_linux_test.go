package proxy

import (
	"io"
	"strings"
	"testing"
	"time"
)

// idleProxy runs a proxy to an echo app whose connections close after
// timeout without bytes either way.
func idleProxy(t *testing.T, timeout time.Duration) (string, *logBuf) {
	t.Helper()
	s, _, addr, logs := startLogged(t, app(t, echo), Config{})
	s.SetPolicies(&Policies{Default: &Policy{Protocol: ProtoTCP, IdleTimeout: timeout}})
	return addr, logs
}

func echoOnce(t *testing.T, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q = %q, %v", msg, got, err)
	}
}

// A connection on which nothing moves is closed once the timeout passes,
// and the log says why.
func TestIdleTimeoutClosesQuietConnections(t *testing.T) {
	addr, logs := idleProxy(t, 200*time.Millisecond)
	c := dial(t, addr) // a 10 s deadline: a connection left open fails the test
	echoOnce(t, c, "hi")
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("quiet connection: %v; want it closed by the idle timeout", err)
	}
	waitFor(t, "the end logged", func() bool { return strings.Contains(logs.String(), `"end":"idle_timeout"`) })
}

// Bytes moving either way keep a connection open well past the timeout.
// The timeout is 40 times the pause between pings, so that a loaded
// machine (CI runs every package at once, under the race detector) does
// not stall the client for a whole timeout.
func TestIdleTimeoutSparesActiveConnections(t *testing.T) {
	addr, logs := idleProxy(t, 2*time.Second)
	c := dial(t, addr)
	for end := time.Now().Add(4500 * time.Millisecond); time.Now().Before(end); {
		echoOnce(t, c, "ping")
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "idle_timeout") {
		t.Fatalf("an active connection was closed as idle:\n%s", logs)
	}
}
