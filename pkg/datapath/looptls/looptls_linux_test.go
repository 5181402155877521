package looptls_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"runtime"

	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veneermesh/veneer/pkg/datapath/loop"
	"github.com/veneermesh/veneer/pkg/datapath/looptls"
)

// echo is a loop's owner of one TLS socket: what it reads goes back
// through a Flow from the socket to itself, the peer's end is passed back
// as close_notify and a FIN, and the socket is closed when both are done
// (reset when either broke). What it knows is sent on done.
type echo struct {
	l    *loop.Loop
	s    loop.Socket
	tc   *looptls.Conn
	f    loop.Flow
	done chan echoEnd
	cs   tls.ConnectionState
}

type echoEnd struct {
	moved int64 // plaintext echoed
	err   error // how it ended; nil: cleanly
	cs    tls.ConnectionState
}

func (e *echo) Ready(_ int, ev loop.Events) {
	e.s.Note(ev)
	e.advance()
}

func (e *echo) advance() {
	switch e.tc.State() {
	case looptls.Handshaking:
		return
	case looptls.Failed:
		e.end(e.tc.Err(), true)
		return
	}
	if e.cs.Version == 0 {
		e.cs = e.tc.ConnectionState()
	}
	out, err := e.f.Pump(e.l, &e.s, &e.s, false)
	switch out {
	case loop.Finished:
		e.end(nil, false)
	case loop.ReadFailed, loop.WriteFailed:
		e.end(fmt.Errorf("%v: %w", out, err), true)
	case loop.Yielded:
		e.l.Post(e.advance)
	}
}

func (e *echo) end(err error, reset bool) {
	if e.done == nil {
		return
	}
	e.f.Release(e.l)
	e.l.CloseSocket(&e.s, reset)
	e.done <- echoEnd{moved: e.f.Moved, err: err, cs: e.cs}
	e.done = nil
}

// rig is a loop with its own goroutine.
type rig struct {
	t testing.TB
	l *loop.Loop
}

func newRig(t testing.TB) *rig {
	t.Helper()
	l, err := loop.New()
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	t.Cleanup(l.Stop)
	return &rig{t: t, l: l}
}

// adopt puts a duplicate of c's socket on the loop as an echo over TLS:
// the server's end when server, else the client's.
func (r *rig) adopt(c net.Conn, cfg *tls.Config, server bool) chan echoEnd {
	r.t.Helper()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		r.t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	c.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan echoEnd, 1)
	r.l.Post(func() {
		e := &echo{l: r.l, s: loop.Socket{FD: fd, Write: loop.Ready}, done: done}
		if server {
			e.tc = looptls.Server(r.l, &e.s, cfg, nil)
		} else {
			e.tc = looptls.Client(r.l, &e.s, cfg)
		}
		e.s.Layer = e.tc
		if err := r.l.Add(fd, e); err != nil {
			e.end(err, true)
		}
	})
	return done
}

// pair is a loopback TCP connection: the dialled end, the accepted end.
func pair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialled.Close(); accepted.Close() })
	return dialled, accepted
}

var certOnce struct {
	sync.Once
	cert tls.Certificate
	pool *x509.CertPool
}

// testCert is a self-signed ECDSA certificate for looptls.test.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "looptls.test"},
			DNSNames: []string{"looptls.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		certOnce.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		certOnce.pool = x509.NewCertPool()
		certOnce.pool.AddCert(leaf)
	})
	return certOnce.cert, certOnce.pool
}

func configs(t testing.TB) (server, client *tls.Config) {
	cert, pool := testCert(t)
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		DynamicRecordSizingDisabled: true}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "looptls.test",
		DynamicRecordSizingDisabled: true}
	return server, client
}

// suites are the ways Go negotiates: TLS 1.3 (its suite picked by the
// server), and every TLS 1.2 suite of Go's secure list with an ECDSA key.
func suites() []struct {
	name  string
	max   uint16
	suite uint16
} {
	all := []struct {
		name  string
		max   uint16
		suite uint16
	}{{"TLS1.3", tls.VersionTLS13, 0}}
	for _, s := range tls.CipherSuites() {
		if strings.Contains(s.Name, "ECDSA") && !strings.Contains(s.Name, "CBC") {
			all = append(all, struct {
				name  string
				max   uint16
				suite uint16
			}{s.Name, tls.VersionTLS12, s.ID})
		}
	}
	return all
}

// exchange writes 1 MiB and a few small messages on c, reads them back,
// and half-closes.
func exchange(t *testing.T, c *tls.Conn) {
	t.Helper()
	big := make([]byte, 1<<20)
	rand.Read(big)
	msgs := [][]byte{[]byte("hello"), big, []byte("x"), bytes.Repeat([]byte("y"), 16<<10+1)}
	var want bytes.Buffer
	go func() {
		for _, m := range msgs {
			c.Write(m)
		}
		c.CloseWrite()
	}()
	for _, m := range msgs {
		want.Write(m)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %d bytes back; want the %d sent", len(got), want.Len())
	}
}

func wait(t *testing.T, done chan echoEnd) echoEnd {
	t.Helper()
	select {
	case e := <-done:
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("the loop's end did not finish")
	}
	return echoEnd{}
}

// A loop server and a crypto/tls client, for every suite Go negotiates:
// bytes both ways whole, the client's half-close seen as EOF and answered
// with close_notify.
func TestServerInterop(t *testing.T) {
	for _, s := range suites() {
		t.Run(s.name, func(t *testing.T) {
			r := newRig(t)
			scfg, ccfg := configs(t)
			ccfg.MaxVersion = s.max
			if s.suite != 0 {
				ccfg.CipherSuites = []uint16{s.suite}
			}
			cc, sc := pair(t)
			done := r.adopt(sc, scfg, true)
			c := tls.Client(cc, ccfg)
			exchange(t, c)
			e := wait(t, done)
			if e.err != nil {
				t.Fatalf("the loop's end: %v", e.err)
			}
			if s.suite != 0 && e.cs.CipherSuite != s.suite {
				t.Fatalf("negotiated %s; want %s", tls.CipherSuiteName(e.cs.CipherSuite), s.name)
			}
			if e.cs.Version != s.max {
				t.Fatalf("version %x; want %x", e.cs.Version, s.max)
			}
			if e.moved != 1<<20+5+1+16<<10+1 {
				t.Fatalf("echoed %d bytes; want %d", e.moved, 1<<20+5+1+16<<10+1)
			}
		})
	}
}

// Past maxHandshakes in flight a handshake fails at once with ErrBusy: no
// goroutine starts, and the peer's connection is reset. Under the bound
// again, the next one goes through.
func TestHandshakesBounded(t *testing.T) {
	r := newRig(t)
	scfg, ccfg := configs(t)
	restore := looptls.FillHandshakes()
	cc, sc := pair(t)
	done := r.adopt(sc, scfg, true)
	c := tls.Client(cc, ccfg)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err == nil {
		t.Fatal("a handshake past the bound succeeded")
	}
	if e := wait(t, done); !errors.Is(e.err, looptls.ErrBusy) {
		t.Fatalf("the loop's end: %v; want ErrBusy", e.err)
	}
	restore()
	cc, sc = pair(t)
	done = r.adopt(sc, scfg, true)
	exchange(t, tls.Client(cc, ccfg))
	if e := wait(t, done); e.err != nil {
		t.Fatalf("under the bound again: %v", e.err)
	}
}

// A loop client and a crypto/tls server, for every suite.
func TestClientInterop(t *testing.T) {
	for _, s := range suites() {
		t.Run(s.name, func(t *testing.T) {
			r := newRig(t)
			scfg, ccfg := configs(t)
			ccfg.MaxVersion = s.max
			if s.suite != 0 {
				ccfg.CipherSuites = []uint16{s.suite}
			}
			cc, sc := pair(t)
			done := r.adopt(cc, ccfg, false)
			c := tls.Server(sc, scfg)
			exchange(t, c)
			if e := wait(t, done); e.err != nil {
				t.Fatalf("the loop's end: %v", e.err)
			}
		})
	}
}

// Resumed sessions both ways: a loop server resumes a crypto/tls client's
// ticket, and a loop client resumes from its cache the ticket it read on
// the loop.
func TestResumption(t *testing.T) {
	t.Run("loop server", func(t *testing.T) {
		r := newRig(t)
		scfg, ccfg := configs(t)
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		for i, want := range []bool{false, true} {
			cc, sc := pair(t)
			done := r.adopt(sc, scfg, true)
			c := tls.Client(cc, ccfg)
			exchange(t, c) // reading takes the ticket
			e := wait(t, done)
			if e.err != nil || e.cs.DidResume != want || c.ConnectionState().DidResume != want {
				t.Fatalf("connection %d: loop resumed %v, client %v (err %v); want %v", i, e.cs.DidResume, c.ConnectionState().DidResume, e.err, want)
			}
		}
	})
	t.Run("loop client", func(t *testing.T) {
		r := newRig(t)
		scfg, ccfg := configs(t)
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		for i, want := range []bool{false, true} {
			cc, sc := pair(t)
			done := r.adopt(cc, ccfg, false)
			c := tls.Server(sc, scfg)
			exchange(t, c)
			if e := wait(t, done); e.err != nil || e.cs.DidResume != want {
				t.Fatalf("connection %d: loop resumed %v (err %v); want %v", i, e.cs.DidResume, e.err, want)
			}
		}
	})
}

// capture is a crypto/tls peer's connection whose writes can be held
// back, so that the test sends its records as it likes.
type capture struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	held bytes.Buffer
}

func (c *capture) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		return c.held.Write(b)
	}
	return c.Conn.Write(b)
}

// record is what the peer's next Write of m makes, held back.
func (c *capture) record(t *testing.T, tc *tls.Conn, m []byte) []byte {
	t.Helper()
	c.mu.Lock()
	c.hold = true
	c.held.Reset()
	c.mu.Unlock()
	if _, err := tc.Write(m); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	return bytes.Clone(c.held.Bytes())
}

// readN reads exactly n bytes of plaintext.
func readN(t *testing.T, tc *tls.Conn, n int) []byte {
	t.Helper()
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(tc, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// serverWithCapture is a loop server and a crypto/tls client whose writes
// the test can hold back.
func serverWithCapture(t *testing.T) (*tls.Conn, *capture, net.Conn, chan echoEnd) {
	r := newRig(t)
	scfg, ccfg := configs(t)
	cc, sc := pair(t)
	done := r.adopt(sc, scfg, true)
	cap := &capture{Conn: cc}
	c := tls.Client(cap, ccfg)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return c, cap, cc, done
}

// Records split at every byte boundary reach the loop in two writes each,
// and two records in one write: each is read whole, once.
func TestSplitRecords(t *testing.T) {
	c, cap, raw, done := serverWithCapture(t)
	raw.(*net.TCPConn).SetNoDelay(true)
	msg := []byte("0123456789abcdef0123456789abcdef")
	rec := cap.record(t, c, msg)
	total := 0
	for i := 1; i < len(rec); i++ {
		if i > 1 {
			rec = cap.record(t, c, msg)
		}
		raw.Write(rec[:i])
		time.Sleep(200 * time.Microsecond)
		raw.Write(rec[i:])
		if got := readN(t, c, len(msg)); !bytes.Equal(got, msg) {
			t.Fatalf("split at %d: got %q back; want %q", i, got, msg)
		}
		total += len(msg)
	}
	two := append(cap.record(t, c, []byte("one")), cap.record(t, c, []byte("two"))...)
	raw.Write(two)
	if got := readN(t, c, 6); string(got) != "onetwo" {
		t.Fatalf("two records in one write: got %q back", got)
	}
	c.CloseWrite()
	if e := wait(t, done); e.err != nil || e.moved != int64(total+6) {
		t.Fatalf("the loop echoed %d bytes (err %v); want %d", e.moved, e.err, total+6)
	}
}

// A record cut short by the peer's FIN, and a record with one bit flipped:
// the loop's end fails, nothing of the record is given to its owner, and a
// flipped bit is answered with the bad_record_mac alert.
func TestBadRecords(t *testing.T) {
	for _, tc := range []struct {
		name, err string
		mangle    func(rec []byte, raw net.Conn)
	}{
		{"truncated", "unexpected EOF", func(rec []byte, raw net.Conn) {
			raw.Write(rec[:len(rec)-3])
			raw.(*net.TCPConn).CloseWrite()
		}},
		{"flipped bit", "bad record MAC", func(rec []byte, raw net.Conn) {
			rec[len(rec)-20] ^= 0x10
			raw.Write(rec)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cap, raw, done := serverWithCapture(t)
			c.Write([]byte("good"))
			readN(t, c, 4)
			tc.mangle(cap.record(t, c, []byte("bad bytes")), raw)
			e := wait(t, done)
			if e.err == nil || !strings.Contains(e.err.Error(), tc.err) {
				t.Fatalf("the loop's end: %v; want an error with %q", e.err, tc.err)
			}
			if e.moved != 4 {
				t.Fatalf("the loop gave %d bytes to its owner; want only the 4 good ones", e.moved)
			}
			if tc.name == "flipped bit" {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := c.Read(make([]byte, 10))
				if err == nil || !strings.Contains(err.Error(), "bad record MAC") {
					t.Fatalf("the client read %v; want the bad_record_mac alert", err)
				}
			}
		})
	}
}

// KeyUpdate, both ways: the peer sends one asking for an update; the
// loop's end takes the new keys for reading, answers with its own
// KeyUpdate and writes under new keys, which crypto/tls reads.
func TestKeyUpdate(t *testing.T) {
	for _, loopServer := range []bool{true, false} {
		name := map[bool]string{true: "loop server", false: "loop client"}[loopServer]
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			scfg, ccfg := configs(t)
			var keys bytes.Buffer
			scfg.SessionTicketsDisabled = true // the peer's records are all the test's to count
			cc, sc := pair(t)
			var peer *tls.Conn
			var raw net.Conn
			var label string
			if loopServer {
				ccfg.KeyLogWriter = &keys
				r.adopt(sc, scfg, true)
				peer, raw, label = tls.Client(cc, ccfg), cc, "CLIENT_TRAFFIC_SECRET_0"
			} else {
				scfg.KeyLogWriter = &keys
				r.adopt(cc, ccfg, false)
				peer, raw, label = tls.Server(sc, scfg), sc, "SERVER_TRAFFIC_SECRET_0"
			}
			if _, err := peer.Write([]byte("hello")); err != nil { // the peer's record 0
				t.Fatal(err)
			}
			if got := readN(t, peer, 5); string(got) != "hello" {
				t.Fatalf("got %q", got)
			}
			cs := peer.ConnectionState()
			w := newSealer(t, cs.CipherSuite, secret(t, keys.String(), label))
			w.seq = 1
			raw.Write(w.seal(22, []byte{24, 0, 0, 1, 1})) // KeyUpdate, update_requested
			w.update()
			raw.Write(w.seal(23, []byte("after the update")))
			if got := readN(t, peer, 16); string(got) != "after the update" {
				t.Fatalf("after the KeyUpdate: got %q back", got)
			}
		})
	}
}

// secret is the traffic secret named label in an NSS key log.
func secret(t *testing.T, log, label string) []byte {
	for _, line := range strings.Split(log, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == label {
			b, err := hex.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no %s in the key log", label)
	return nil
}

// sealer writes TLS 1.3 records of one direction by hand (RFC 8446 5.2,
// 7.1-7.3), for a peer that crypto/tls cannot make send a KeyUpdate.
type sealer struct {
	t      *testing.T
	hash   func() hash.Hash
	keyLen int
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func newSealer(t *testing.T, suite uint16, secret []byte) *sealer {
	s := &sealer{t: t, secret: secret}
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		s.hash, s.keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		s.hash, s.keyLen = sha512.New384, 32
	default:
		t.Skipf("the sealer writes AES-GCM records; %s was negotiated (no AES hardware here)", tls.CipherSuiteName(suite))
	}
	s.keys()
	return s
}

func (s *sealer) label(secret []byte, label string, n int) []byte {
	l := "tls13 " + label
	info := append([]byte{byte(n >> 8), byte(n), byte(len(l))}, l...)
	info = append(info, 0)
	out, err := hkdf.Expand(s.hash, secret, string(info), n)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *sealer) keys() {
	block, err := aes.NewCipher(s.label(s.secret, "key", s.keyLen))
	if err != nil {
		s.t.Fatal(err)
	}
	s.aead, _ = cipher.NewGCM(block)
	s.iv = s.label(s.secret, "iv", 12)
	s.seq = 0
}

// update moves to the next traffic secret, as a KeyUpdate does.
func (s *sealer) update() {
	s.secret = s.label(s.secret, "traffic upd", s.hash().Size())
	s.keys()
}

func (s *sealer) seal(typ byte, content []byte) []byte {
	inner := append(bytes.Clone(content), typ)
	nonce := bytes.Clone(s.iv)
	for i := range 8 {
		nonce[4+i] ^= byte(s.seq >> (56 - 8*i))
	}
	s.seq++
	n := len(inner) + s.aead.Overhead()
	hdr := []byte{23, 3, 3, byte(n >> 8), byte(n)}
	return s.aead.Seal(hdr, nonce, inner, hdr)
}

// A handshake that never ends is stopped by its owner's Release: its
// goroutine's read fails, and nothing is told to the released owner.
func TestReleaseStopsHandshake(t *testing.T) {
	r := newRig(t)
	scfg, _ := configs(t)
	_, sc := pair(t) // the client never speaks
	f, _ := sc.(*net.TCPConn).File()
	fd, _ := unix.Dup(int(f.Fd()))
	f.Close()
	sc.Close()
	unix.SetNonblock(fd, true)
	states := make(chan looptls.State, 1)
	r.l.Post(func() {
		s := loop.Socket{FD: fd, Write: loop.Ready}
		c := looptls.Server(r.l, &s, scfg, nil)
		s.Layer = c
		r.l.Add(fd, handlerFunc(func(int, loop.Events) {}))
		r.l.Post(func() {
			r.l.CloseSocket(&s, true)
			states <- c.State()
		})
	})
	if st := <-states; st != looptls.Handshaking {
		t.Fatalf("state %v after release; want it left Handshaking", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for looptls.InFlight() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshake goroutines still running after release", looptls.InFlight())
		}
		time.Sleep(time.Millisecond)
	}
}

type handlerFunc func(int, loop.Events)

func (f handlerFunc) Ready(fd int, ev loop.Events) { f(fd, ev) }

// FuzzRecords sends the fuzzer's bytes as records after a handshake with a
// loop server: whatever they are, nothing reaches the loop's owner (a
// record not sealed with the session's keys cannot be taken for one), and
// the connection ends.
func FuzzRecords(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{23, 3, 3, 0, 5, 1, 2, 3, 4, 5})      // application data that does not open
	f.Add([]byte{23, 3, 3, 0xff, 0xff})               // a length past the limit, and nothing after
	f.Add([]byte{21, 3, 3, 0, 2, 2, 0})               // a plaintext alert after the handshake
	f.Add([]byte{20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 1})  // ChangeCipherSpec, then a cut record
	f.Add(bytes.Repeat([]byte{23, 3, 3, 0, 0x11}, 4)) // empty-looking records
	f.Add([]byte{22, 3, 3, 0, 4, 24, 0, 0, 1})        // a plaintext KeyUpdate
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newRig(t)
		scfg, ccfg := configs(t)
		scfg.CurvePreferences = []tls.CurveID{tls.X25519} // a cheaper handshake: the records are the point
		cc, sc := pair(t)
		done := r.adopt(sc, scfg, true)
		c := tls.Client(cc, ccfg)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		cc.Write(data)
		cc.(*net.TCPConn).CloseWrite()
		if e := wait(t, done); e.moved != 0 {
			t.Fatalf("%d bytes of forged records reached the owner (end: %v)", e.moved, e.err)
		}
	})
}

// BenchmarkIdleConnHeap is the live heap an idle mTLS connection holds on
// the loop's side (and, in the same process, on its crypto/tls client's):
// 200 connections handshaked, a message each way, then the heap in use
// after a GC, per connection pair. Run once: -benchtime 1x. Its inuse
// profile (-memprofile, -memprofilerate 1) says what holds it.
func BenchmarkIdleConnHeap(b *testing.B) {
	scfg, ccfg := configs(b)
	for b.Loop() {
		r := newRig(b)
		const n = 200
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		clients := make([]*tls.Conn, 0, n)
		for range n {
			cc, sc := pair(b)
			r.adopt(sc, scfg, true)
			c := tls.Client(cc, ccfg)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("hello"))
			if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n, "heap-B/conn")
		runtime.KeepAlive(clients)
	}
}
