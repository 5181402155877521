package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/datapath/origdst"
	"github.com/veneermesh/veneer/pkg/intercept/probe"
)

// start runs a proxy on loopback whose every connection "was going to" dst:
// real sockets, with only the conntrack lookup faked.
func start(t *testing.T, dst netip.AddrPort, cfg Config) (*Server, *prometheus.Registry, string) {
	t.Helper()
	s, reg, addr, _ := startLogged(t, dst, cfg)
	return s, reg, addr
}

// logBuf is a log the test reads while the proxy writes it.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged is start with the proxy's log kept.
func startLogged(t *testing.T, dst netip.AddrPort, cfg Config) (*Server, *prometheus.Registry, string, *logBuf) {
	t.Helper()
	if cfg.OriginalDst == nil {
		cfg.OriginalDst = func(int, bool, uint16) (netip.AddrPort, error) { return dst, nil }
	}
	if cfg.IsProbe == nil {
		cfg.IsProbe = func(netip.AddrPort) bool { return false }
	}
	reg := prometheus.NewRegistry()
	logs := &logBuf{}
	s, err := New(cfg, zerolog.New(logs), reg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, reg, l.Addr().String(), logs
}

// app runs handle for every connection on a loopback listener; the
// benchmarks' forwarder, echo and sink are apps too.
func app(t testing.TB, handle func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptTCP()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // out of descriptors (TestAcceptEMFILEDoesNotSpin): the app waits too
				time.Sleep(5 * time.Millisecond)
				continue
			}
			go handle(c)
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// echo copies what it reads back, then closes after the client's EOF.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.Close()
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// counter is the sum of name's samples for port (of every other label: tls).
func counter(t *testing.T, reg *prometheus.Registry, name, port string) float64 {
	t.Helper()
	return counterWith(t, reg, name, "port", port)
}

// waitFor polls cond: the proxy updates metrics after both sides have closed,
// which the client cannot observe directly.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestForwardEchoAndHalfClose(t *testing.T) {
	dst := app(t, echo)
	s, reg, addr := start(t, dst, Config{})
	c := dial(t, addr)

	// 16 MiB: enough for reads that fill the copy buffer, so the bulk of
	// it is spliced both ways and counted as such.
	payload := make([]byte, 16<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		// Half-close: the app must still be able to answer after our EOF.
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err, dumpConns(s))
	}
	if sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("echoed %d bytes differ from the %d sent", len(got), len(payload))
	}
	if idlePipes(s) == 0 {
		t.Error("16 MiB each way went through no pipe: never spliced")
	}
	port := strings.TrimPrefix(dst.String(), "127.0.0.1:")
	waitFor(t, "closed counter", func() bool { return counter(t, reg, "veneer_tcp_connections_closed_total", port) == 1 })
	for name, want := range map[string]float64{
		"veneer_tcp_connections_opened_total": 1,
		"veneer_tcp_received_bytes_total":     float64(len(payload)),
		"veneer_tcp_sent_bytes_total":         float64(len(payload)),
		"veneer_tcp_active_connections":       0,
	} {
		if got := counter(t, reg, name, port); got != want {
			t.Errorf("%s{port=%s} = %v; want %v", name, port, got, want)
		}
	}
}

// The server speaks first (MySQL, SMTP): the proxy must pass its greeting on
// without waiting for the client.
func TestServerFirst(t *testing.T) {
	dst := app(t, func(c *net.TCPConn) {
		c.Write([]byte("220 hello\r\n"))
		io.Copy(io.Discard, c)
		c.Close()
	})
	_, _, addr := start(t, dst, Config{})
	c := dial(t, addr)
	buf := make([]byte, 11)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "220 hello\r\n" {
		t.Fatalf("greeting = %q, %v; want %q", buf, err, "220 hello\r\n")
	}
}

func TestAppNotListeningResets(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dst := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	_, _, addr := start(t, dst, Config{})
	expectReset(t, addr)
}

// expectReset connects to addr and wants the connection reset: by the time
// connect(2) returns on loopback, the reset may already have come.
func expectReset(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("connection to %s: %v; want it reset (ECONNRESET)", addr, err)
	}
}

func TestNotRedirectedIsRefused(t *testing.T) {
	var called atomic.Bool
	_, _, addr := start(t, netip.AddrPort{}, Config{OriginalDst: func(int, bool, uint16) (netip.AddrPort, error) {
		called.Store(true)
		return netip.AddrPort{}, origdst.ErrNotRedirected
	}})
	expectReset(t, addr)
	if !called.Load() {
		t.Error("the original destination was never asked for")
	}
}

func TestProbeAnswered(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.0.1:8080")
	_, _, addr := start(t, dst, Config{IsProbe: probe.Is})
	got, err := io.ReadAll(dial(t, addr))
	if err != nil || string(got) != "veneer-probe original-dst=127.0.0.1:8080\n" {
		t.Errorf("probe reply = %q, %v", got, err)
	}
}

func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	dst := app(t, func(c *net.TCPConn) {
		<-release
		c.Write([]byte("done"))
		c.Close()
	})
	s, _, addr := start(t, dst, Config{})
	c := dial(t, addr)
	c.Write([]byte("x"))
	time.Sleep(50 * time.Millisecond) // let the proxy reach the app

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// New connections are refused at once once shutdown began.
	waitFor(t, "listener closed", func() bool {
		c2, err := net.Dial("tcp", addr)
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a connection still open", err)
	default:
	}
	close(release)
	got, _ := io.ReadAll(c)
	if !bytes.Equal(got, []byte("done")) {
		t.Errorf("in-flight response = %q; want %q", got, "done")
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v; want nil after the last connection ended", err)
	}
}

func TestShutdownTimeoutClosesConnections(t *testing.T) {
	dst := app(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) }) // never answers
	s, reg, addr := start(t, dst, Config{})
	c := dial(t, addr)
	c.Write([]byte("x"))
	port := strings.TrimPrefix(dst.String(), "127.0.0.1:")
	waitFor(t, "connection open", func() bool { return counter(t, reg, "veneer_tcp_active_connections", port) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v; want DeadlineExceeded", err)
	}
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read after forced drain = %v", err)
	}
	waitFor(t, "active back to 0", func() bool { return counter(t, reg, "veneer_tcp_active_connections", port) == 0 })
	if got := counter(t, reg, "veneer_tcp_connections_closed_total", port); got != 1 {
		t.Errorf("closed connections after drain = %v; want 1", got)
	}
}

var nopLog = zerolog.Nop()

func nopReg() prometheus.Registerer { return prometheus.NewRegistry() }

// canceled is a context already done: a Shutdown that closes at once.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
