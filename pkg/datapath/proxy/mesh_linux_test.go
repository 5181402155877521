package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/decor/authz"
	"github.com/veneermesh/veneer/pkg/mesh/identity"
	"github.com/veneermesh/veneer/pkg/mesh/identity/testca"
	"github.com/veneermesh/veneer/pkg/mesh/mtls"
)

const (
	webID    = "spiffe://veneer.test/ns/shop/sa/web"
	clientID = "spiffe://veneer.test/ns/shop/sa/client"
)

// svid is an identity issued by ca for id, from files.
func svid(t *testing.T, ca *testca.CA, id string) *identity.Source {
	t.Helper()
	dir := t.TempDir()
	ca.WriteDir(t, dir, id, time.Hour)
	src, err := identity.FromFiles(context.Background(), dir, time.Hour, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return src
}

// counted is echo that counts the connections the app accepted.
func counted(n *atomic.Int64) func(*net.TCPConn) {
	return func(c *net.TCPConn) { n.Add(1); echo(c) }
}

// meshDial connects to addr as a meshed peer with src's SVID.
func meshDial(t *testing.T, addr string, src *identity.Source) (*tls.Conn, error) {
	t.Helper()
	tc := tls.Client(dial(t, addr), mtls.Client(src, nil, nil))
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, tc.Handshake()
}

// echoed writes msg, half-closes, and says whether the same bytes came
// back before EOF.
func echoed(t *testing.T, c net.Conn, msg []byte) bool {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Logf("write: %v", err)
		return false
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Logf("read: %v (after %d bytes)", err, len(got))
	}
	return err == nil && bytes.Equal(got, msg)
}

func TestMTLSInbound(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	server, client := svid(t, ca, webID), svid(t, ca, clientID)
	var accepted atomic.Int64
	dst := app(t, counted(&accepted))
	for _, proto := range []string{ProtoAuto, ProtoTCP} {
		s, reg, addr, logs := startLogged(t, dst, Config{Identity: server})
		s.SetPolicies(&Policies{Default: &Policy{Protocol: proto, SniffTimeout: time.Second, MTLS: MTLSStrict}})

		tc, err := meshDial(t, addr, client)
		if err != nil {
			t.Fatalf("%s: handshake: %v", proto, err)
		}
		if !echoed(t, tc, []byte("hello over mTLS")) {
			t.Fatalf("%s: the meshed peer's bytes did not come back", proto)
		}
		waitFor(t, "the connection logged", func() bool { return strings.Contains(logs.String(), `"peer_principal":"`+clientID+`"`) })
		if !strings.Contains(logs.String(), `"tls":true`) {
			t.Errorf("%s: the connection log says nothing of TLS: %s", proto, logs)
		}
		if n := counterWith(t, reg, "veneer_tcp_connections_closed_total", "tls", "true"); n != 1 {
			t.Errorf("%s: closed{tls=true} = %v, want 1", proto, n)
		}

		// Strict: plaintext is reset, and the app never sees it.
		before := accepted.Load()
		if echoed(t, dial(t, addr), []byte("GET / HTTP/1.1\r\n\r\n")) {
			t.Fatalf("%s: strict port forwarded plaintext", proto)
		}
		waitFor(t, "the refusal logged", func() bool { return strings.Contains(logs.String(), endNotMTLS) })
		// A silent plaintext client too, once the sniff timeout is over.
		c := dial(t, addr)
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%s: a silent plaintext client was not refused", proto)
		}
		// The app's own TLS, from a client that is not a meshed peer.
		own := tls.Client(dial(t, addr), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if own.Handshake() == nil {
			t.Fatalf("%s: strict port took TLS without veneer's ALPN", proto)
		}
		if accepted.Load() != before {
			t.Errorf("%s: the app saw %d refused connections", proto, accepted.Load()-before)
		}

		// Permissive: both.
		s.SetPolicies(&Policies{Default: &Policy{Protocol: proto, SniffTimeout: time.Second, MTLS: MTLSPermissive}})
		if !echoed(t, dial(t, addr), []byte("plaintext")) {
			t.Errorf("%s: permissive port refused plaintext", proto)
		}
		if tc, err := meshDial(t, addr, client); err != nil || !echoed(t, tc, []byte("mTLS")) {
			t.Errorf("%s: permissive port refused mTLS: %v", proto, err)
		}
		// The app's own TLS goes through to the app, opaque: the echo app
		// sends the ClientHello back, which fails the handshake.
		before = accepted.Load()
		own = tls.Client(dial(t, addr), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		own.Handshake()
		waitFor(t, "the app's own TLS reaching the app", func() bool { return accepted.Load() == before+1 })
	}
}

// TestMTLSAuthorizedByPrincipal: a TCP rule on the verified ID; the
// denied peer is reset after its handshake, before the app is dialled.
func TestMTLSAuthorizedByPrincipal(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	var accepted atomic.Int64
	s, _, addr := start(t, app(t, counted(&accepted)), Config{Identity: svid(t, ca, webID)})
	rules := authz.Config{Default: "deny", Rules: []authz.Rule{{Action: "allow", Principals: []string{"spiffe://veneer.test/ns/shop/*"}}}}
	s.SetPolicies(&Policies{Default: &Policy{Protocol: ProtoTCP, SniffTimeout: time.Second, MTLS: MTLSPermissive, Authz: authz.New(rules)}})

	if tc, err := meshDial(t, addr, svid(t, ca, clientID)); err != nil || !echoed(t, tc, []byte("allowed")) {
		t.Fatalf("an allowed principal: %v", err)
	}
	if tc, err := meshDial(t, addr, svid(t, ca, "spiffe://veneer.test/ns/other/sa/intruder")); err == nil && echoed(t, tc, []byte("intruder")) {
		t.Fatal("a principal outside the rule was let through")
	}
	if echoed(t, dial(t, addr), []byte("plaintext")) {
		t.Fatal("plaintext (no principal) was let through a rule of principals")
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the app saw %d connections, want only the allowed one", n)
	}
}

// TestMTLSOutboundTunnel: the app's plaintext goes over mTLS from the
// client's agent to the server's, both ways with half-closes, 8 MiB; a
// server that is not the ID the peer is declared with gets nothing.
func TestMTLSOutboundTunnel(t *testing.T) {
	ca := testca.New(t, "veneer.test")
	var accepted atomic.Int64
	srv, _, srvAddr, slogs := startLogged(t, app(t, counted(&accepted)), Config{Identity: svid(t, ca, webID)})
	srv.SetPolicies(&Policies{Default: &Policy{Protocol: ProtoAuto, SniffTimeout: time.Second, MTLS: MTLSStrict}})
	to := netip.MustParseAddrPort(srvAddr)
	out, _, outAddr, logs := startLogged(t, to, Config{Identity: svid(t, ca, clientID), Direction: "outbound"})
	peer := func(want string) *Policies {
		p, _ := identity.ParsePattern(want)
		return &Policies{Default: &Policy{Protocol: ProtoAuto, SniffTimeout: time.Second},
			Peers: []*Peer{{Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Want: []identity.Pattern{p}}}}
	}
	out.SetPolicies(peer("spiffe://veneer.test/ns/shop/*"))

	big := make([]byte, 8<<20)
	rand.Read(big)
	c := dial(t, outAddr)
	done := make(chan [32]byte)
	go func() {
		h := sha256.New()
		io.Copy(h, c)
		done <- [32]byte(h.Sum(nil))
	}()
	c.Write(big)
	c.CloseWrite()
	if got := <-done; got != sha256.Sum256(big) {
		t.Fatalf("8 MiB over the mTLS tunnel came back changed; the server's log:\n%s\nthe client's:\n%s", slogs, logs)
	}
	waitFor(t, "the outbound connection logged", func() bool { return strings.Contains(logs.String(), `"tls":true`) })

	// A server-first exchange: the client says nothing until the app does.
	greet := app(t, func(c *net.TCPConn) { c.Write([]byte("220 hello\r\n")); c.Close() })
	srv2, _, srv2Addr := start(t, greet, Config{Identity: svid(t, ca, webID)})
	srv2.SetPolicies(&Policies{Default: &Policy{Protocol: ProtoAuto, SniffTimeout: time.Second, MTLS: MTLSStrict}})
	out2, _, out2Addr := start(t, netip.MustParseAddrPort(srv2Addr), Config{Identity: svid(t, ca, clientID), Direction: "outbound"})
	out2.SetPolicies(peer("*"))
	if b, _ := io.ReadAll(dial(t, out2Addr)); string(b) != "220 hello\r\n" {
		t.Errorf("server-first over mTLS: %q", b)
	}

	// Declared as another ID: the handshake fails and nothing is sent.
	before := accepted.Load()
	out.SetPolicies(peer("spiffe://veneer.test/ns/bank/*"))
	if echoed(t, dial(t, outAddr), []byte("secret")) {
		t.Fatal("bytes reached a peer that is not the declared ID")
	}
	waitFor(t, "the failure logged", func() bool { return strings.Contains(logs.String(), endHandshake) })
	if accepted.Load() != before {
		t.Error("the app behind the wrong peer saw the connection")
	}
}

// counterWith sums the samples of name (counters or gauges) whose label is value.
func counterWith(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}
