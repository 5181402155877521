package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/mesh/identity"
	"github.com/veneermesh/veneer/pkg/mesh/identity/testca"
)

// source is an identity from files written by ca, followed every 10ms.
func source(t *testing.T, ca *testca.CA, id string) (*identity.Source, string) {
	dir := t.TempDir()
	ca.WriteDir(t, dir, id, time.Hour)
	src, err := identity.FromFiles(context.Background(), dir, 10*time.Millisecond, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return src, dir
}

// server accepts TLS connections with cfg, and sends on the channel the
// peer ID (or the error) of each, with whether it resumed.
type result struct {
	id      string
	resumed bool
	err     error
}

func serve(t *testing.T, cfg *tls.Config) (string, <-chan result) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan result, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					out <- result{err: err}
					return
				}
				id, err := PeerID(tc.ConnectionState())
				out <- result{id: id.String(), resumed: tc.ConnectionState().DidResume, err: err}
				tc.Write([]byte("hi"))
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return ln.Addr().String(), out
}

// dial handshakes as a client with cfg and reads the server's greeting
// (which also takes in its session ticket).
func dial(addr string, cfg *tls.Config) (string, bool, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	tc := tls.Client(c, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return "", false, err
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(tc, b); err != nil {
		return "", false, err
	}
	id, err := PeerID(tc.ConnectionState())
	return id.String(), tc.ConnectionState().DidResume, err
}

func TestMutual(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	srvSrc, _ := source(t, ca, "spiffe://veneer.test/ns/shop/sa/web")
	cliSrc, _ := source(t, ca, "spiffe://veneer.test/ns/shop/sa/client")
	addr, got := serve(t, Server(srvSrc))
	id, _, err := dial(addr, Client(cliSrc, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if id != "spiffe://veneer.test/ns/shop/sa/web" {
		t.Errorf("the client saw %s", id)
	}
	if r := <-got; r.err != nil || r.id != "spiffe://veneer.test/ns/shop/sa/client" {
		t.Errorf("the server saw %+v", r)
	}

	// A server that is not the one the client wants.
	want, _ := identity.ParsePattern("spiffe://veneer.test/ns/bank/*")
	if _, _, err := dial(addr, Client(cliSrc, []identity.Pattern{want}, nil)); err == nil || !strings.Contains(err.Error(), "not one of") {
		t.Errorf("a server outside the wanted IDs: %v", err)
	}
	<-got

	// A client without veneer's ALPN (any TLS client with a valid SVID).
	plain := Client(cliSrc, nil, nil)
	plain.NextProtos = []string{"h2"}
	if _, _, err := dial(addr, plain); err == nil {
		t.Error("a client not offering veneer's ALPN was let in")
	}
	<-got
}

func TestOtherTrustDomainRefused(t *testing.T) {
	srvSrc, _ := source(t, testca.New(t, "veneer.test"), "spiffe://veneer.test/ns/shop/sa/web")
	stranger, _ := source(t, testca.New(t, "other.test"), "spiffe://other.test/ns/shop/sa/client")
	addr, got := serve(t, Server(srvSrc))
	dial(addr, Client(stranger, nil, nil))
	if r := <-got; r.err == nil {
		t.Fatalf("a client of another trust domain was let in as %s", r.id)
	}
	// A client of this trust domain, signed by another CA that says so.
	forger, _ := source(t, testca.New(t, "veneer.test"), "spiffe://veneer.test/ns/shop/sa/admin")
	dial(addr, Client(forger, nil, nil))
	if r := <-got; r.err == nil {
		t.Fatalf("a client signed by a CA not in the bundle was let in as %s", r.id)
	}
}

// TestResumedSessionIsVerified: a session resumed from a ticket is
// verified again, against the bundle of now. crypto/tls alone would take
// the certificate the ticket remembers, unverified (VerifyPeerCertificate
// is not called on resumption).
func TestResumedSessionIsVerified(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	srvSrc, srvDir := source(t, ca, "spiffe://veneer.test/ns/shop/sa/web")
	cliSrc, _ := source(t, ca, "spiffe://veneer.test/ns/shop/sa/client")
	addr, got := serve(t, Server(srvSrc))
	cfg := Client(cliSrc, nil, tls.NewLRUClientSessionCache(8))
	for i, wantResumed := range []bool{false, true} {
		if _, resumed, err := dial(addr, cfg); err != nil || resumed != wantResumed {
			t.Fatalf("connection %d: resumed %v, %v; want resumed %v", i, resumed, err, wantResumed)
		}
		if r := <-got; r.err != nil || r.resumed != wantResumed || r.id != "spiffe://veneer.test/ns/shop/sa/client" {
			t.Fatalf("connection %d: the server saw %+v", i, r)
		}
	}

	// The server's trust domain moves to a new CA: the client's SVID, which
	// the ticket remembers, no longer verifies.
	before, _ := srvSrc.Current()
	testca.New(t, "veneer.test").WriteDir(t, srvDir, "spiffe://veneer.test/ns/shop/sa/web", time.Hour)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, _ := srvSrc.Current(); now != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new bundle was not picked up")
		}
	}
	dial(addr, cfg)
	if r := <-got; r.err == nil {
		t.Fatalf("a resumed session (resumed %v) was let in as %s with a certificate the bundle no longer verifies", r.resumed, r.id)
	}
}

// TestVerifiedChainExpires: a chain verified once is taken from the cache
// only until its leaf expires, and never for another identity's bundle.
func TestVerifiedChainExpires(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	own, _ := source(t, ca, "spiffe://veneer.test/ns/shop/sa/web")
	id, _ := own.Current()
	peerDir := t.TempDir()
	ca.WriteDir(t, peerDir, "spiffe://veneer.test/ns/shop/sa/client", time.Hour)
	peer, err := identity.FromFiles(context.Background(), peerDir, time.Hour, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	p, _ := peer.Current()
	chain := []*x509.Certificate{p.Leaf}
	if got, err := verified(id, chain); err != nil || got.String() != "spiffe://veneer.test/ns/shop/sa/client" {
		t.Fatalf("verified = %v, %v", got, err)
	}
	defer func() { clock = time.Now }()
	clock = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := verified(id, chain); err == nil {
		t.Error("a cached chain was taken past its leaf's NotAfter")
	}
	clock = time.Now
	other, _ := source(t, testca.New(t, "veneer.test"), "spiffe://veneer.test/ns/shop/sa/web")
	oid, _ := other.Current()
	if _, err := verified(oid, chain); err == nil {
		t.Error("a chain verified for one bundle was taken for another")
	}
}
