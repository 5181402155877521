// Package identity is where the agent's SPIFFE identity comes from: its
// X.509 SVID and the trust bundle of its trust domain, from the SPIFFE
// Workload API (a SPIRE agent's socket, $SPIFFE_ENDPOINT_SOCKET) or from
// files in the layout of cert-manager's csi-driver-spiffe (tls.crt,
// tls.key, ca.crt), kept current as either rotates. Handshakes read the
// current identity when they start, so a rotation reaches every new
// handshake at once and no open connection is touched.
//
//	src, err := identity.FromWorkloadAPI(ctx, "unix:///run/spire/agent.sock", reg, log)
//	id, err := src.Current() // an error until the first SVID arrives, and once it has expired
//
// Metrics: veneer_svid_expiry_seconds (the SVID's remaining lifetime),
// veneer_svid_updates_total.
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Identity is one SVID with the bundle that verifies its trust domain's
// peers.
type Identity struct {
	ID     spiffeid.ID
	Cert   *tls.Certificate // the SVID's chain and key, as a handshake sends it
	Leaf   *x509.Certificate
	Bundle *x509bundle.Bundle // of ID's trust domain only: peers of other trust domains are refused
}

// Serial is the SVID's serial number, as the logs show it.
func (id *Identity) Serial() string { return id.Leaf.SerialNumber.Text(16) }

// New makes an Identity of an SVID and the bundles it came with; the
// bundle of the SVID's own trust domain must be among them.
func New(svid *x509svid.SVID, bundles x509bundle.Source) (*Identity, error) {
	if len(svid.Certificates) == 0 {
		return nil, errors.New("the SVID has no certificate")
	}
	b, err := bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return nil, fmt.Errorf("no trust bundle for the SVID's trust domain %s: %w", svid.ID.TrustDomain(), err)
	}
	if b.Empty() {
		return nil, fmt.Errorf("the trust bundle of %s is empty", svid.ID.TrustDomain())
	}
	cert := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return &Identity{ID: svid.ID, Cert: cert, Leaf: svid.Certificates[0], Bundle: b}, nil
}

// ErrNone is Current's error before the first SVID arrives.
var ErrNone = errors.New("no SVID yet")

// Source holds the current identity, set by whatever follows the SVID's
// rotations (the Workload API's watch, the files' poll).
type Source struct {
	name    string // where the SVIDs come from, for logs and errors
	cur     atomic.Pointer[Identity]
	now     func() time.Time
	updates prometheus.Counter
	log     zerolog.Logger
	stop    func()
}

func newSource(name string, reg prometheus.Registerer, log zerolog.Logger) (*Source, error) {
	s := &Source{name: name, now: time.Now, log: log.With().Str("svid_source", name).Logger(), stop: func() {}}
	s.updates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "veneer_svid_updates_total",
		Help: "X.509 SVIDs (or trust bundles) received: the first one and every rotation.",
	})
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "veneer_svid_expiry_seconds",
		Help: "Seconds until the agent's X.509 SVID expires (negative once it has; 0 before the first one).",
	}, func() float64 {
		if id := s.cur.Load(); id != nil {
			return id.Leaf.NotAfter.Sub(s.now()).Seconds()
		}
		return 0
	})
	for _, c := range []prometheus.Collector{s.updates, expiry} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Current is the identity to handshake with now. Before the first SVID it
// is ErrNone; past the SVID's NotAfter, an error: a SPIRE agent that is
// gone leaves its last SVID in place, and it must not be used expired.
func (s *Source) Current() (*Identity, error) {
	id := s.cur.Load()
	if id == nil {
		return nil, fmt.Errorf("%s: %w", s.name, ErrNone)
	}
	if now := s.now(); now.After(id.Leaf.NotAfter) {
		return nil, fmt.Errorf("%s: the SVID %s (serial %s) expired at %s and no new one came",
			s.name, id.ID, id.Serial(), id.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return id, nil
}

// Ready says whether an SVID has arrived (and not expired since).
func (s *Source) Ready() bool {
	_, err := s.Current()
	return err == nil
}

// Close stops following rotations.
func (s *Source) Close() { s.stop() }

// set makes id current, and logs it.
func (s *Source) set(id *Identity) {
	old := s.cur.Swap(id)
	s.updates.Inc()
	ev := s.log.Info().Stringer("spiffe_id", id.ID).Str("serial", id.Serial()).
		Time("not_after", id.Leaf.NotAfter).Int("bundle_authorities", len(id.Bundle.X509Authorities()))
	switch {
	case old == nil:
		ev.Msg("SVID received")
	case old.Serial() == id.Serial():
		ev.Msg("trust bundle updated")
	default:
		ev.Str("previous_serial", old.Serial()).Msg("SVID rotated")
	}
}
