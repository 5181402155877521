package loop

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
}
