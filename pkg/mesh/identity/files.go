package identity

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// The files of cert-manager's csi-driver-spiffe, in the directory it mounts.
const (
	CertFile   = "tls.crt" // the SVID: leaf first, then any intermediates (PEM)
	KeyFile    = "tls.key" // its private key (PEM)
	BundleFile = "ca.crt"  // the trust domain's CA certificates (PEM)
)

// FromFiles reads the SVID and bundle from dir, and reads them again
// whenever their content changes (checked every interval; the CSI driver
// swaps a symlink, which inotify on a file misses), until Close or ctx
// ends. Files that are missing or do not make an SVID at the start are an
// error; later, a set that does not parse (a key and a certificate caught
// between two writes) keeps the last good one, and is logged.
func FromFiles(ctx context.Context, dir string, interval time.Duration, reg prometheus.Registerer, log zerolog.Logger) (*Source, error) {
	raw, id, err := readFiles(dir)
	if err != nil {
		return nil, err
	}
	s, err := newSource(dir, reg, log)
	if err != nil {
		return nil, err
	}
	s.set(id)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		var lastErr string
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now, id, err := readFiles(dir)
			switch {
			case bytes.Equal(now, raw):
			case err != nil:
				if err.Error() != lastErr {
					lastErr = err.Error()
					s.log.Warn().Err(err).Msg("the SVID files changed and do not parse; keeping the last good SVID")
				}
			default:
				raw, lastErr = now, ""
				s.set(id)
			}
		}
	}()
	return s, nil
}

// readFiles reads dir's three files, and returns their bytes together (to
// tell a change) and the identity they make.
func readFiles(dir string) ([]byte, *Identity, error) {
	var all [][]byte
	for _, name := range []string{CertFile, KeyFile, BundleFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, fmt.Errorf("--svid-dir: %w", err)
		}
		all = append(all, b)
	}
	raw := bytes.Join(all, []byte{0})
	svid, err := x509svid.Parse(all[0], all[1])
	if err != nil {
		return raw, nil, fmt.Errorf("--svid-dir: %s and %s: %w", filepath.Join(dir, CertFile), KeyFile, err)
	}
	b, err := x509bundle.Parse(svid.ID.TrustDomain(), all[2])
	if err != nil {
		return raw, nil, fmt.Errorf("--svid-dir: %s: %w", filepath.Join(dir, BundleFile), err)
	}
	id, err := New(svid, b)
	if err != nil {
		return raw, nil, fmt.Errorf("--svid-dir %s: %w", dir, err)
	}
	return raw, id, nil
}
