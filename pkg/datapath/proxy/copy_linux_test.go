package proxy

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
)

// idlePipes is how many empty pipes the server's loop keeps, read on the
// loop.
func idlePipes(s *Server) int {
	n := make(chan int)
	l := s.cfg.Loops[0]
	l.Post(func() { n <- l.IdlePipes() })
	return <-n
}

// through sends size random bytes through the proxy to an app that hashes
// what it reads, and checks that all of it arrived, and that the proxy
// passed the client's EOF on. It returns the server, for its loop.
func through(t *testing.T, size int) *Server {
	t.Helper()
	got := make(chan [32]byte, 1)
	sink := app(t, func(c *net.TCPConn) {
		h := sha256.New()
		io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
		c.Close()
	})
	s, _, addr := start(t, sink, Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	payload := make([]byte, size)
	rand.Read(payload)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, c); err != nil { // until the proxy closes
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != sha256.Sum256(payload) {
			t.Fatalf("the app read other bytes than the %d sent", size)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the app never saw the client's EOF")
	}
	return s
}

// A bulk transfer (reads that fill the copy buffer) goes on with splice(2),
// and every byte arrives, in order; the pipe goes back to the idle list empty.
func TestBulkIsSpliced(t *testing.T) {
	if n := idlePipes(through(t, 32<<20)); n == 0 {
		t.Fatal("a 32 MiB transfer used no pipe: it was never spliced")
	}
}

// Small exchanges are copied through the buffer: no pipe.
func TestSmallIsCopied(t *testing.T) {
	if n := idlePipes(through(t, 64<<10)); n != 0 {
		t.Fatalf("a 64 KiB transfer left %d idle pipes: it was spliced", n)
	}
}

// Out of file descriptors for a pipe, a bulk transfer is copied on.
func TestNoPipeCopiesOn(t *testing.T) {
	made := loop.NewPipe
	defer func() { loop.NewPipe = made }()
	var failed atomic.Int32
	loop.NewPipe = func() (*loop.Pipe, error) { failed.Add(1); return nil, unix.EMFILE }
	through(t, 32<<20)
	if failed.Load() == 0 {
		t.Fatal("no pipe was asked for: the test did not reach the fallback")
	}
}
