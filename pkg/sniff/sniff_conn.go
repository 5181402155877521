package sniff

import (
	"net"
	"time"
)

// Result is what Sniff read and decided.
type Result struct {
	Proto      Proto
	FromClient []byte // read from the client: replay to the app first
	FromApp    []byte // read from the app: send to the client first
}

// maxPeek bounds what is read from the client before deciding; every
// recognised request line decides within far fewer bytes.
const maxPeek = 4096

// Early reads what the client sends within wait, before anyone connects to
// the app. Most HTTP clients send their request with the handshake, so an
// HTTP connection is usually decided here and can use a pooled connection
// to the app; a server-first protocol waits only this long for the agent to
// connect. It returns what it read and whether that decided the protocol.
// The conn is left without a deadline.
func Early(client net.Conn, wait time.Duration) (got []byte, p Proto, decided bool) {
	client.SetReadDeadline(time.Now().Add(wait))
	defer client.SetReadDeadline(time.Time{})
	buf := make([]byte, maxPeek)
	// Silence within wait, or a client that already closed, is undecided:
	// the app decides, or the copy sees the EOF.
	p, decided = readClient(client, buf, &got)
	return got, p, decided
}

// Sniff waits up to timeout for the first bytes from client or app and
// decides the protocol; already is what Early read. Both conns are left
// without deadlines. A client that closes or fails before deciding is TCP,
// with what it sent.
func Sniff(client, app net.Conn, timeout time.Duration, already []byte) Result {
	var r Result
	// The deadline is set before the app's goroutine starts: that goroutine
	// may move it to now at any moment, and nothing may move it back.
	client.SetReadDeadline(time.Now().Add(timeout))

	// The app's first bytes arrive on their own goroutine; when they come,
	// the client's read is interrupted so the decision is made at once.
	appDone := make(chan struct{})
	var appN int
	appBuf := make([]byte, maxPeek)
	go func() {
		defer close(appDone)
		appN, _ = app.Read(appBuf) // an EOF or error: the copy sees it again
		if appN > 0 {
			client.SetReadDeadline(time.Now())
		}
	}()

	// Early's buffer, when it is one, goes on being filled.
	buf := already[:cap(already)]
	if len(buf) < maxPeek {
		buf = make([]byte, maxPeek)
		copy(buf, already)
	}
	r.FromClient = buf[:len(already)]
	r.Proto, _ = readClient(client, buf, &r.FromClient)

	// Stop the app's read and collect what it got.
	app.SetReadDeadline(time.Now())
	<-appDone
	app.SetReadDeadline(time.Time{})
	client.SetReadDeadline(time.Time{})
	if appN > 0 {
		// The app spoke: whatever it is, it is not a client-first protocol.
		r.FromApp = appBuf[:appN]
		r.Proto = TCP
	}
	// An app or client that closed or failed before deciding is TCP: the
	// copy that follows sees the same EOF or error and ends the connection.
	return r
}

// readClient reads the client's first bytes into buf, after the *got it
// already holds, until they decide, the client stops (EOF, error) or its
// read deadline passes. Undecided is TCP.
func readClient(client net.Conn, buf []byte, got *[]byte) (Proto, bool) {
	for n := len(*got); ; {
		if p, ok := decide(*got); ok || n == len(buf) {
			return p, ok || n == len(buf)
		}
		m, err := client.Read(buf[n:])
		n += m
		*got = buf[:n]
		if err != nil {
			p, ok := decide(*got)
			return p, ok
		}
	}
}

// decide is what Classify's verdict on b means, and whether it is final.
func decide(b []byte) (Proto, bool) {
	switch Classify(b) {
	case IsHTTP1:
		return HTTP1, true
	case IsHTTP2:
		return HTTP2, true
	case NotHTTP:
		return TCP, true
	}
	return TCP, false
}
