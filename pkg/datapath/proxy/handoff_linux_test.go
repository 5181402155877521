package proxy

import (
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// fakeHTTP takes the connections handed to the HTTP server, the client's
// socket taken off the loop as a net.Conn for the test to serve.
type fakeHTTP struct{ got chan handed }

type handed struct {
	LoopConn
	Pre  []byte   // a copy: LoopConn's is valid during ServeLoop only
	Conn net.Conn // the client, off the loop
}

func (f *fakeHTTP) ServeLoop(c LoopConn) {
	h := handed{LoopConn: c, Pre: append([]byte(nil), c.Pre...)}
	h.Conn, _ = c.Loop.Leave(&c.Client)
	f.got <- h
}

func autoPorts(s *Server) {
	s.SetPolicies(&Policies{Default: &Policy{Protocol: ProtoAuto, SniffTimeout: time.Minute}})
}

// loopConns counts the connections the server's loop still holds.
func loopConns(s *Server) int {
	n := 0
	onLoop(s, func(l *loop.Loop) {
		l.Each(func(h loop.Handler) {
			if _, ok := h.(*conn); ok {
				n++
			}
		})
	})
	return n
}

// A connection whose first bytes are HTTP goes to the HTTP server with
// those bytes, before any dial; the proxy's record of it ends there, and
// its socket carries the rest both ways.
func TestHandOffHTTP(t *testing.T) {
	http := &fakeHTTP{got: make(chan handed, 1)}
	dst := app(t, echo)
	s, _, addr := start(t, dst, Config{HTTP: http})
	autoPorts(s)
	c := dial(t, addr)
	c.Write([]byte("GET / HTTP/1.1\r\n"))
	var h handed
	select {
	case h = <-http.got:
	case <-time.After(10 * time.Second):
		t.Fatal("an HTTP request line was never handed off")
	}
	defer h.Conn.Close()
	if h.Conn == nil {
		t.Fatal("the handed connection's socket could not leave the loop")
	}
	if !strings.HasPrefix(string(h.Pre), "GET / HTTP/1.1\r\n") || h.App.FD >= 0 || h.Dst != dst {
		t.Fatalf("handoff: pre %q, app fd %d, dst %v; want the request line, no app connection, dst %v", h.Pre, h.App.FD, h.Dst, dst)
	}
	if n := loopConns(s); n != 0 {
		t.Errorf("the proxy's loop still holds %d records of a connection handed off", n)
	}
	c.Write([]byte("Host: x\r\n\r\n"))
	rest := make([]byte, len("Host: x\r\n\r\n")-(len(h.Pre)-len("GET / HTTP/1.1\r\n")))
	h.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(h.Conn, rest); err != nil {
		t.Fatalf("reading the handed-off conn: %v", err)
	}
	h.Conn.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
	got := make([]byte, len("HTTP/1.1 204"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "HTTP/1.1 204" {
		t.Fatalf("client read %q, %v; want the handed-off conn's answer", got, err)
	}
	h.Closed(int64(len(h.Pre)), 0, "http")
	waitFor(t, "the connection uncounted", func() bool { return s.open.Load() == 0 })
}

// On an auto port a silent client whose app speaks first is forwarded as
// TCP once the app speaks, not after the sniff timeout (a minute here).
func TestAutoServerFirstNeverStalls(t *testing.T) {
	http := &fakeHTTP{got: make(chan handed, 1)}
	dst := app(t, func(c *net.TCPConn) {
		c.Write([]byte("220 hello\r\n"))
		io.Copy(c, c)
		c.Close()
	})
	s, _, addr := start(t, dst, Config{HTTP: http})
	autoPorts(s)
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second)) // far less than the sniff timeout
	buf := make([]byte, 11)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "220 hello\r\n" {
		t.Fatalf("greeting = %q, %v; want it before the sniff timeout", buf, err)
	}
	echoOnce(t, c, "HELO x\r\n") // forwarded as TCP, not handed off
	select {
	case h := <-http.got:
		t.Fatalf("a server-first connection was handed to HTTP with %q", h.Pre)
	default:
	}
}

// Out of file descriptors, the listener stops accepting and tries again on
// a backing-off timer instead of spinning on a listener that stays
// readable; once descriptors are free, the queued connections are served.
func TestAcceptEMFILEDoesNotSpin(t *testing.T) {
	dst := app(t, echo)
	s, _, addr, logs := startLogged(t, dst, Config{})
	defer func() {
		if t.Failed() {
			t.Log(logs)
		}
	}()
	echoOnce(t, dial(t, addr), "warm") // the app's and the agent's sockets exist
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// Sockets made before the limit comes down; their connects need no fd.
	to := netip.MustParseAddrPort(addr)
	var fds []int
	for range 3 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	// The limit is on fd numbers: below the highest open one, every free
	// number is then taken, so that the next socket cannot be had.
	high, err := highestFD()
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(high + 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE here: %v", err)
	}
	var fillers []int
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		for _, fd := range fillers {
			unix.Close(fd)
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	defer restore()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fillers = append(fillers, fd)
	}
	for _, fd := range fds {
		sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
		if err := unix.Connect(fd, sa); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	var before, after int
	onLoop(s, func(l *loop.Loop) { before = l.Turns() })
	waitFor(t, "accept failing", func() bool { return strings.Contains(logs.String(), "accept failed") })
	time.Sleep(500 * time.Millisecond)
	onLoop(s, func(l *loop.Loop) { after = l.Turns() })
	restore()
	// A spinning loop turns hundreds of thousands of times in half a
	// second; backing off from 5 ms, it retries about seven times.
	if turns := after - before; turns > 200 {
		t.Errorf("the loop turned %d times in 500 ms with accept failing EMFILE; it spins", turns)
	}
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "client")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		echoOnce(t, c, "served after EMFILE")
		c.Close()
	}
	fds = nil
}

// highestFD is the highest file descriptor the process has open.
func highestFD() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	high := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > high {
			high = n
		}
	}
	return high, err
}
