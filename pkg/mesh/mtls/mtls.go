// Package mtls is veneer's mutual TLS between meshed pods: the TLS
// configurations both ends handshake with, from the agent's current SPIFFE
// identity (pkg/mesh/identity), and the verification of the other end.
//
// A meshed client offers veneer's own ALPN, ALPN, so that the server's
// agent tells it from an app's own TLS by the ClientHello alone (as
// Istio's sidecars offer istio-peer-exchange). Both ends use TLS 1.3 and
// present their X.509 SVIDs; each verifies the other's against the trust
// bundle of its own trust domain only, so a peer of another trust domain
// is refused.
//
// Every handshake is verified in VerifyConnection, resumed ones too:
// crypto/tls does not call VerifyPeerCertificate (where go-spiffe's
// tlsconfig verifies) when a session is resumed, and takes the peer's
// certificates from the ticket. Here a resumed session's certificates are
// verified again against the current bundle and time, so the principal the
// rules see is always one verified now.
//
//	srv := tls.Server(conn, mtls.Server(src))
//	err := srv.HandshakeContext(ctx)
//	id, _ := mtls.PeerID(srv.ConnectionState()) // spiffe://td/ns/shop/sa/web
package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/veneermesh/veneer/pkg/mesh/identity"
)

// ALPN is the protocol a meshed client offers, and the server picks.
const ALPN = "veneer-mtls/1"

// HandshakeTimeout bounds a handshake between agents, either way.
const HandshakeTimeout = 10 * time.Second

// Server is the configuration of the server end: it asks for the
// client's SVID and verifies it; any ID of the trust domain is let in
// (authorization by principal comes after, in the port's rules).
func Server(src *identity.Source) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		ClientAuth: tls.RequireAnyClientCert, // verified in VerifyConnection
		// Full records from the first byte: between agents there is no
		// browser waiting to render the first packet, and a record costs
		// a seal and a header however small it is.
		DynamicRecordSizingDisabled: true,
		GetCertificate:              func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert(src) },
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verify(src, cs, nil)
			return err
		},
	}
}

// Client is the configuration of the client end, towards a peer whose ID
// must match one of want (none: any ID of the trust domain). Sessions are
// resumed from cache (shared by every peer; nil for none), and verified
// all the same.
func Client(src *identity.Source, want []identity.Pattern, cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		// An SVID names no host: its chain and its SPIFFE ID are checked in
		// VerifyConnection instead of a host name.
		InsecureSkipVerify:          true,
		ClientSessionCache:          cache,
		DynamicRecordSizingDisabled: true,
		GetClientCertificate:        func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert(src) },
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verify(src, cs, want)
			return err
		},
	}
}

// cert is the current SVID, for a handshake starting now: a rotation
// reaches the next handshake, and no open connection.
func cert(src *identity.Source) (*tls.Certificate, error) {
	id, err := src.Current()
	if err != nil {
		return nil, err
	}
	return id.Cert, nil
}

// PeerID is the verified SPIFFE ID of the other end of a completed
// handshake made with Server or Client.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("no verified peer")
	}
	return x509svid.IDFromCert(cs.PeerCertificates[0])
}

// verify checks the peer's chain against the current bundle and, when
// want is not empty, its ID against want.
func verify(src *identity.Source, cs tls.ConnectionState, want []identity.Pattern) (spiffeid.ID, error) {
	if cs.NegotiatedProtocol != ALPN {
		return spiffeid.ID{}, fmt.Errorf("the peer did not agree on ALPN %s", ALPN)
	}
	own, err := src.Current()
	if err != nil {
		return spiffeid.ID{}, err
	}
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("the peer sent no certificate")
	}
	id, err := verified(own, cs.PeerCertificates)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("the peer's SVID: %w", err)
	}
	if len(want) > 0 && !slices.ContainsFunc(want, func(p identity.Pattern) bool { return p.Matches(id) }) {
		return spiffeid.ID{}, fmt.Errorf("the peer is %s, not one of %v", id, want)
	}
	return id, nil
}

// A chain verified against an identity's bundle stays verified until the
// first of its certificates expires: the same chain, the same bundle and
// a time before every NotAfter give the same answer (SPIFFE has no
// revocation lists). So each peer's chain is verified once per bundle,
// not on every handshake: a rotation of the agent's own SVID brings a new
// Identity, whose chains are verified anew. Sessions resumed from tickets
// are verified through here too.
type chainKey struct {
	own   *identity.Identity
	chain [sha256.Size]byte
}

type chainResult struct {
	id    spiffeid.ID
	until time.Time
}

var (
	chains    sync.Map // chainKey -> chainResult
	chainsLen atomic.Int64
)

// clock is time.Now; tests of the expiry move it.
var clock = time.Now

// maxChains bounds the verified chains kept; past it they are forgotten
// and verified again (peers are workloads, few per trust domain).
const maxChains = 4096

func verified(own *identity.Identity, certs []*x509.Certificate) (spiffeid.ID, error) {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	k := chainKey{own: own, chain: [sha256.Size]byte(h.Sum(nil))}
	now := clock()
	if r, ok := chains.Load(k); ok && now.Before(r.(chainResult).until) {
		return r.(chainResult).id, nil
	}
	id, _, err := x509svid.Verify(certs, own.Bundle, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, err
	}
	until := ValidUntil(append(slices.Clip(certs), own.Bundle.X509Authorities()...))
	if chainsLen.Add(1) > maxChains {
		chains.Clear()
		chainsLen.Store(1)
	}
	chains.Store(k, chainResult{id: id, until: until})
	return id, nil
}

// ValidUntil is when the first of certs expires: a connection verified
// with them is not to be used past it. Zero for none.
func ValidUntil(certs []*x509.Certificate) time.Time {
	var until time.Time
	for _, c := range certs {
		if until.IsZero() || c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	return until
}
