package sniff

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

// clientHello is the first flight of a real crypto/tls client offering protos.
func clientHello(t testing.TB, protos ...string) []byte {
	c := &capture{}
	tc := tls.Client(c, &tls.Config{NextProtos: protos, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	tc.SetDeadline(time.Now().Add(time.Second))
	tc.Handshake() // fails on the capture's read: the hello is written
	if len(c.b) == 0 {
		t.Fatal("no ClientHello written")
	}
	return c.b
}

// capture is a net.Conn that keeps what is written and reads nothing.
type capture struct {
	net.Conn
	b []byte
}

func (c *capture) Write(b []byte) (int, error)      { c.b = append(c.b, b...); return len(b), nil }
func (c *capture) Read([]byte) (int, error)         { return 0, errors.New("capture: no reads") }
func (c *capture) SetDeadline(time.Time) error      { return nil }
func (c *capture) SetReadDeadline(time.Time) error  { return nil }
func (c *capture) SetWriteDeadline(time.Time) error { return nil }

func TestPeerHello(t *testing.T) {
	peer := clientHello(t, "h2", "veneer-mtls/1")
	for _, tc := range []struct {
		name string
		b    []byte
		want Hello
	}{
		{"peer", peer, HelloPeer},
		{"peer, more bytes after", append(slices.Clip(peer), "GET"...), HelloPeer},
		{"the app's own TLS", clientHello(t, "h2", "http/1.1"), HelloOther},
		{"no ALPN", clientHello(t), HelloOther},
		{"an ALPN that only starts the same", clientHello(t, "veneer-mtls/10"), HelloOther},
		{"empty", nil, HelloNeedMore},
		{"one byte", peer[:1], HelloNeedMore},
		{"record header", peer[:5], HelloNeedMore},
		{"all but the last byte", peer[:len(peer)-1], HelloNeedMore},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), HelloNotTLS},
		{"a handshake byte, then not TLS", []byte{0x16, 'x'}, HelloNotTLS},
		{"a record too long for TLS", []byte{0x16, 3, 1, 0x40, 0x01}, HelloNotTLS},
		{"a server hello", []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, HelloOther},
		{"a hello longer than its record", []byte{0x16, 3, 1, 0, 4, 1, 0, 1, 0}, HelloOther},
	} {
		if got := PeerHello(tc.b, "veneer-mtls/1"); got != tc.want {
			t.Errorf("%s: PeerHello = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestPeerHelloEveryCut: every prefix of a real peer hello asks for more,
// never decides wrongly.
func TestPeerHelloEveryCut(t *testing.T) {
	peer := clientHello(t, "veneer-mtls/1")
	for i := range peer {
		if got := PeerHello(peer[:i], "veneer-mtls/1"); got != HelloNeedMore {
			t.Fatalf("the first %d of %d bytes: %d, want HelloNeedMore", i, len(peer), got)
		}
	}
}

// FuzzPeerHello checks the peek against crypto/tls's own parser: what Go's
// server reads as a ClientHello offering the ALPN, in one record, the peek
// calls a peer; what the peek calls a peer names the ALPN in its bytes.
func FuzzPeerHello(f *testing.F) {
	const alpn = "veneer-mtls/1"
	f.Add(clientHello(f, alpn))
	f.Add(clientHello(f, "h2", alpn))
	f.Add(clientHello(f, "h2"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := PeerHello(b, alpn)
		if got == HelloPeer && !bytes.Contains(b, []byte(alpn)) {
			t.Fatalf("a peer, but %q is not in the bytes", alpn)
		}
		if len(b) < 5 || b[0] != 0x16 {
			return
		}
		end := 5 + int(binary.BigEndian.Uint16(b[3:5]))
		if end > len(b) {
			return // crypto/tls would wait for more of the record
		}
		var protos []string
		srv := tls.Server(&replay{b: b[:end]}, &tls.Config{
			GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				protos = h.SupportedProtos
				return nil, errors.New("seen")
			},
		})
		srv.Handshake()
		if slices.Contains(protos, alpn) && got != HelloPeer {
			t.Fatalf("crypto/tls read a ClientHello offering %v; PeerHello = %d", protos, got)
		}
	})
}

// replay is a net.Conn that reads b, then EOF, and discards writes.
type replay struct {
	net.Conn
	b []byte
}

func (r *replay) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("EOF")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
func (r *replay) Write(b []byte) (int, error)      { return len(b), nil }
func (r *replay) SetDeadline(time.Time) error      { return nil }
func (r *replay) SetReadDeadline(time.Time) error  { return nil }
func (r *replay) SetWriteDeadline(time.Time) error { return nil }
func (r *replay) Close() error                     { return nil }
