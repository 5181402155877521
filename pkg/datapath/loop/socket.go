package loop

import "net"

// Readiness is what the loop knows of one direction of a socket, as
// HAProxy's fd.c keeps "ready" per direction: with edge-triggered events
// the poller says a direction became ready once, and the loop must
// remember it until a try says otherwise.
type Readiness uint8

const (
	// Waiting: the last try met EAGAIN, or a short read drained the
	// socket: nothing is tried until the poller's next edge.
	Waiting Readiness = iota
	// Ready: the poller reported the direction and no try has met EAGAIN
	// since: the next read or write is tried at once.
	Ready
)

// Socket is one registered non-blocking socket and its readiness both ways.
type Socket struct {
	FD          int
	Read, Write Readiness
	// PeerShut: the poller reported the peer's half-close (RDHUP). A short
	// read then no longer means drained: the reads that follow end in EOF.
	PeerShut bool
	// Broken: the poller reported an error or a hang-up (of a connect
	// that failed, say); the next try, or SO_ERROR, says which.
	Broken bool
	// Layer, when set, stands between the socket and its owner (TLS,
	// pkg/datapath/looptls): Read, Send, ShutdownWrite and the Flows go through it,
	// and Read and Write above are the readiness of the bytes it gives
	// and takes, which it keeps, as HAProxy's SSL layer sits on its raw
	// socket layer. Nil: the owner's bytes are the socket's.
	Layer Layer
}

// Note takes what the poller reported. An error or a hang-up makes both
// directions ready, so that the next try meets the error and says it.
func (s *Socket) Note(ev Events) {
	if ev&(In|RDHup|Hup|Err) != 0 {
		s.Read = Ready
	}
	if ev&(Out|Hup|Err) != 0 {
		s.Write = Ready
	}
	if ev&(RDHup|Hup) != 0 {
		s.PeerShut = true
	}
	if ev&(Hup|Err) != 0 {
		s.Broken = true
	}
	if s.Layer != nil {
		s.Layer.Note(s, ev)
	}
}

// A Layer turns a socket's bytes into its owner's and back, on the loop.
// Its methods are called on the loop that owns the socket.
type Layer interface {
	// Read reads the owner's bytes into b, as the package's Read does: 0
	// and nil when it must wait (s.Read is then Waiting); io.EOF at the
	// peer's clean end.
	Read(s *Socket, b []byte) (int, error)
	// Write takes the owner's bytes b whole, or none of them while what
	// it took before is not yet out (s.Write is then Waiting).
	Write(s *Socket, b []byte) (int, error)
	// Note takes the poller's events after s noted them: the layer moves
	// what it holds, and sets s's readiness to what it can give and take.
	Note(s *Socket, ev Events)
	// Flushed says whether nothing it took is still to be written.
	Flushed() bool
	// CloseWrite ends the owner's writing: the layer's own end (TLS's
	// close_notify), then the socket's write side once all is out.
	CloseWrite(s *Socket)
	// Leave goes on over nc, the socket's net.Conn of Go's poller, when
	// the socket leaves the loop: it returns the owner's net.Conn.
	Leave(nc net.Conn) net.Conn
	// Release stops what the layer runs (a handshake on a goroutine) and
	// gives back what it holds, when the socket closes.
	Release()
}
