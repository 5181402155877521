package loop

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sink is a Layer that takes whatever is written to it.
type sink struct{ got []byte }

func (s *sink) Read(*Socket, []byte) (int, error) { return 0, nil }
func (s *sink) Write(_ *Socket, b []byte) (int, error) {
	s.got = append(s.got, b...)
	return len(b), nil
}
func (s *sink) Note(*Socket, Events)       {}
func (s *sink) Flushed() bool              { return true }
func (s *sink) CloseWrite(*Socket)         {}
func (s *sink) Leave(nc net.Conn) net.Conn { return nc }
func (s *sink) Release()                   {}

// A read that fills the buffer makes a flow bulk; towards a Layer, which
// cannot take spliced bytes, the flow reads on, and the read that finds
// the socket drained (EAGAIN) waits for the next edge. Regression test: it
// was taken for the source breaking, and the connection reset, in the
// middle of an mTLS stream.
func TestBulkReadTowardsALayerWaits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sender, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := accepted.(*net.TCPConn).File()
	fd, _ := unix.Dup(int(f.Fd()))
	f.Close()
	accepted.Close()
	defer unix.Close(fd)
	unix.SetNonblock(fd, true)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4*BufSize)

	if _, err := sender.Write(make([]byte, BufSize)); err != nil {
		t.Fatal(err)
	}
	src := Socket{FD: fd, Read: Ready}
	dst := Socket{FD: -1, Write: Ready, Layer: &sink{}}
	l := newLoop(t)
	var fl Flow
	deadline := time.Now().Add(5 * time.Second)
	for fl.Moved < BufSize && time.Now().Before(deadline) {
		out, err := fl.Pump(l, &src, &dst, false)
		if out == ReadFailed || out == WriteFailed {
			t.Fatalf("Pump after %d bytes: %v, %v; want it to wait for the socket", fl.Moved, out, err)
		}
		if src.Read == Waiting {
			time.Sleep(time.Millisecond) // the edge this test has no poller for
			src.Read = Ready
		}
	}
	if fl.Moved != BufSize || len(dst.Layer.(*sink).got) != BufSize {
		t.Fatalf("moved %d bytes; want %d", fl.Moved, BufSize)
	}
	out, err := fl.Pump(l, &src, &dst, false)
	if out != Blocked || err != nil || src.Read != Waiting {
		t.Fatalf("drained: Pump = %v, %v with the source %v; want Blocked and Waiting", out, err, src.Read)
	}
}
