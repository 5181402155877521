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
)

// drainPipes closes the idle pipes, so that a test can see whether a copy
// used one.
func drainPipes() {
	for {
		select {
		case p := <-idlePipes:
			putPipe(p, false)
		default:
			return
		}
	}
}

// through sends size random bytes through a forwarder running copyHalf both
// ways to an app that hashes what it reads, and checks that all of it
// arrived, and that the forwarder passed the client's EOF on.
func through(t *testing.T, size int) {
	t.Helper()
	got := make(chan [32]byte, 1)
	sink := app(t, func(c *net.TCPConn) {
		h := sha256.New()
		io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
		c.Close()
	})
	c, err := net.Dial("tcp", forwarder(t, sink, strategies["proxy"]))
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
	if _, err := io.Copy(io.Discard, c); err != nil { // until the forwarder closes
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
}

// A bulk transfer (reads that fill the copy buffer) goes on with splice(2),
// and every byte arrives, in order; the pipe goes back to the idle list empty.
func TestBulkIsSpliced(t *testing.T) {
	drainPipes()
	through(t, 32<<20)
	if len(idlePipes) == 0 {
		t.Fatal("a 32 MiB transfer used no pipe: it was never spliced")
	}
}

// Small exchanges are copied through the pooled buffer: no pipe.
func TestSmallIsCopied(t *testing.T) {
	drainPipes()
	through(t, 64<<10)
	if n := len(idlePipes); n != 0 {
		t.Fatalf("a 64 KiB transfer left %d idle pipes: it was spliced", n)
	}
}

// Out of file descriptors for a pipe, a bulk transfer is copied on.
func TestNoPipeCopiesOn(t *testing.T) {
	drainPipes()
	made := newPipe
	defer func() { newPipe = made }()
	var failed atomic.Int32
	newPipe = func() (*pipe, error) { failed.Add(1); return nil, unix.EMFILE }
	through(t, 32<<20)
	if failed.Load() == 0 {
		t.Fatal("no pipe was asked for: the test did not reach the fallback")
	}
}
