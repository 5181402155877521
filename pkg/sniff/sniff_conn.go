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

// Sniff waits up to timeout for the first bytes from client or app and
// decides the protocol. Both conns are left without deadlines. A client
// that closes or fails before deciding is TCP, with what it sent.
func Sniff(client, app net.Conn, timeout time.Duration) Result {
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

	buf := make([]byte, maxPeek)
	r.Proto = readClient(client, buf, &r.FromClient)

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

// readClient reads the client's first bytes into buf until they decide, the
// client stops (EOF, error) or its read deadline passes, and returns the
// verdict.
func readClient(client net.Conn, buf []byte, got *[]byte) Proto {
	for n := 0; n < len(buf); {
		m, err := client.Read(buf[n:])
		n += m
		*got = buf[:n]
		switch Classify(*got) {
		case IsHTTP1:
			return HTTP1
		case IsHTTP2:
			return HTTP2
		case NotHTTP:
			return TCP
		}
		if err != nil {
			return TCP
		}
	}
	return TCP
}
