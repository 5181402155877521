package proxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// onLoop runs f on the server's loop and waits for it.
func onLoop(s *Server, f func(l *loop.Loop)) {
	done := make(chan struct{})
	l := s.cfg.Loops[0]
	l.Post(func() { f(l); close(done) })
	<-done
}

// appOnce serves one connection with handle and hands back what handle
// returned.
func appOnce(t *testing.T, handle func(*net.TCPConn) string) (netip.AddrPort, <-chan string) {
	t.Helper()
	got := make(chan string, 1)
	return app(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got <- handle(c)
		c.Close()
	}), got
}

func readAll(c net.Conn) string {
	b, err := io.ReadAll(c)
	if err != nil {
		return fmt.Sprintf("%q, then %v", b, err)
	}
	return string(b)
}

// Each side's FIN reaches the other while the other direction goes on:
// the client's first (it asks, then listens) and the app's first (it
// greets and is done talking, then listens).
func TestHalfCloseEachWay(t *testing.T) {
	t.Run("client first", func(t *testing.T) {
		dst, got := appOnce(t, func(c *net.TCPConn) string {
			asked := readAll(c) // until the client's FIN
			c.Write([]byte("answer to " + asked))
			return asked
		})
		_, _, addr := start(t, dst, Config{})
		c := dial(t, addr)
		c.Write([]byte("question"))
		c.CloseWrite()
		if answer := readAll(c); answer != "answer to question" {
			t.Errorf("client read %q; want the answer, then EOF", answer)
		}
		if asked := <-got; asked != "question" {
			t.Errorf("app read %q; want the question, then EOF", asked)
		}
	})
	t.Run("app first", func(t *testing.T) {
		dst, got := appOnce(t, func(c *net.TCPConn) string {
			c.Write([]byte("greeting"))
			c.CloseWrite()
			return readAll(c)
		})
		_, _, addr := start(t, dst, Config{})
		c := dial(t, addr)
		if greeting := readAll(c); greeting != "greeting" {
			t.Errorf("client read %q; want the greeting, then EOF", greeting)
		}
		c.Write([]byte("reply after the app's FIN"))
		c.CloseWrite()
		if reply := <-got; reply != "reply after the app's FIN" {
			t.Errorf("app read %q; want the reply, then EOF", reply)
		}
	})
}

// An app that writes and closes at once sends its last bytes and its FIN
// together: the read that gets them is short and the poller has said
// RDHUP, so the loop reads on to the EOF instead of waiting for an edge
// that never comes.
func TestFINWithLastBytes(t *testing.T) {
	for _, size := range []int{1, 1000, 64 << 10, loop.BufSize - 1, loop.BufSize + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			payload := bytes.Repeat([]byte("z"), size)
			dst, _ := appOnce(t, func(c *net.TCPConn) string {
				c.Write(payload)
				return ""
			})
			_, _, addr := start(t, dst, Config{})
			c := dial(t, addr)
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("read %d bytes, %v; want all %d, then EOF", len(got), err, size)
			}
		})
	}
}

// A reset from either side reaches the other as a reset, mid-stream, and
// the log says which side broke.
func TestResetMirrored(t *testing.T) {
	t.Run("app resets", func(t *testing.T) {
		dst, _ := appOnce(t, func(c *net.TCPConn) string {
			c.Write([]byte("partial"))
			c.SetLinger(0)
			return ""
		})
		_, _, addr, logs := startLogged(t, dst, Config{})
		// On loopback the reset may come before connect(2) returns.
		c, err := net.Dial("tcp", addr)
		if err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadAll(c) // "partial" may come first
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client after the app's reset: %v; want ECONNRESET", err)
		}
		waitFor(t, "app_reset logged", func() bool { return strings.Contains(logs.String(), `"end":"app_reset"`) })
	})
	t.Run("client resets", func(t *testing.T) {
		dst, got := appOnce(t, func(c *net.TCPConn) string {
			_, err := io.Copy(io.Discard, c)
			return fmt.Sprint(err)
		})
		_, _, addr, logs := startLogged(t, dst, Config{})
		c := dial(t, addr)
		c.Write([]byte("partial"))
		time.Sleep(50 * time.Millisecond) // the app is connected and reading
		c.SetLinger(0)
		c.Close()
		if err := <-got; !strings.Contains(err, "connection reset") {
			t.Errorf("app read after the client's reset: %s; want a reset", err)
		}
		waitFor(t, "client_reset logged", func() bool { return strings.Contains(logs.String(), `"end":"client_reset"`) })
	})
}

// held is what a server's connections hold for bytes in flight, read on
// the loop.
func held(s *Server) (bufs, pending int) {
	onLoop(s, func(l *loop.Loop) {
		seen := map[*conn]bool{}
		l.Each(func(h loop.Handler) {
			if c, ok := h.(*conn); ok && !seen[c] {
				seen[c] = true
				for _, f := range []*loop.Flow{&c.up, &c.down} {
					if !f.Idle() {
						bufs++
					}
					pending += f.Held()
				}
			}
		})
	})
	return bufs, pending
}

// A client writing 100 MiB to an app that does not read yet is held back by
// the app: the loop stops reading the client while its bytes wait, so the
// agent holds at most one buffer per direction, whatever the client sends.
func TestSlowReaderBoundsMemory(t *testing.T) {
	const size = 100 << 20
	release := make(chan struct{})
	sum := make(chan [32]byte, 1)
	dst := app(t, func(c *net.TCPConn) {
		<-release
		h := sha256.New()
		io.Copy(h, c)
		sum <- [32]byte(h.Sum(nil))
		c.Close()
	})
	s, _, addr := start(t, dst, Config{})
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var written int64
	var mu sync.Mutex
	sent := sha256.New()
	wrote := make(chan error, 1)
	go func() {
		rng := rand.NewChaCha8([32]byte{1})
		chunk := make([]byte, 1<<20)
		for range size / len(chunk) {
			rng.Read(chunk)
			n, err := c.Write(chunk)
			mu.Lock()
			sent.Write(chunk[:n])
			written += int64(n)
			mu.Unlock()
			if err != nil {
				wrote <- err
				return
			}
		}
		wrote <- c.CloseWrite()
	}()
	time.Sleep(500 * time.Millisecond) // the client fills what the kernel buffers, and stalls
	mu.Lock()
	stalled := written
	mu.Unlock()
	bufs, pending := held(s)
	if stalled >= size {
		t.Fatalf("the client wrote all %d bytes to an app that reads nothing", size)
	}
	if bufs > 1 || pending > loop.BufSize {
		t.Errorf("with the app not reading, the agent holds %d bytes in %d flows; want at most one buffer (%d)", pending, bufs, loop.BufSize)
	}
	close(release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c)
	if got := <-sum; got != [32]byte(sent.Sum(nil)) {
		t.Fatal("the app read other bytes than the client sent")
	}
	t.Logf("the client stalled after %d MiB while the app read nothing; the agent held %d bytes", stalled>>20, pending)
}

// A random schedule of writes of random sizes and half-closes on both ends
// at once arrives byte for byte, each FIN after the last byte, against the
// reference of what each end wrote.
func TestRandomSchedules(t *testing.T) {
	for seed := range uint64(24) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			appPlan, clientPlan := schedule(rng), schedule(rng)
			dst, got := appOnce(t, func(c *net.TCPConn) string { return play(c, appPlan) })
			_, _, addr := start(t, dst, Config{})
			c := dial(t, addr)
			fromApp := play(c, clientPlan)
			if want := string(appPlan.bytes()); fromApp != want {
				t.Errorf("client read %d bytes; want the app's %d, then EOF", len(fromApp), len(want))
			}
			if want := string(clientPlan.bytes()); <-got != want {
				t.Errorf("app did not read the client's %d bytes, then EOF", len(want))
			}
		})
	}
}

// plan is what one end writes: chunks with pauses, then its FIN.
type plan struct {
	chunks [][]byte
	pauses []time.Duration
}

func schedule(rng *rand.Rand) plan {
	var p plan
	for range rng.IntN(12) {
		size := []int{1, 7, 1400, 16 << 10, 300 << 10, 1 << 20}[rng.IntN(6)]
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		p.chunks = append(p.chunks, b)
		p.pauses = append(p.pauses, time.Duration(rng.IntN(3))*time.Millisecond)
	}
	return p
}

func (p plan) bytes() []byte { return bytes.Join(p.chunks, nil) }

// play writes p on c (then half-closes) while reading c to its EOF, and
// returns what it read.
func play(c *net.TCPConn, p plan) string {
	read := make(chan string)
	go func() { read <- readAll(c) }()
	for i, b := range p.chunks {
		if _, err := c.Write(b); err != nil {
			break
		}
		time.Sleep(p.pauses[i])
	}
	c.CloseWrite()
	return <-read
}
