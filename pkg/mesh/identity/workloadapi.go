package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/encoding/protowire"
)

// The SPIFFE Workload API's X.509 stream is one gRPC method,
// FetchX509SVID, a server stream of X509SVIDResponse messages. It is
// spoken here over golang.org/x/net/http2 with the messages read by
// protowire, and the SVIDs and bundles parsed and checked by go-spiffe.
// Not through go-spiffe's workloadapi client: it links gRPC, which cost
// every agent 6.7 MiB of resident memory and 12.6 MB of binary, mTLS on
// or off (measured: a program importing workloadapi against one that does
// not), as OpenTelemetry's gRPC did before (pkg/agent/otlp).
const (
	fetchX509SVID = "/SpiffeWorkloadAPI/FetchX509SVID"
	maxMessage    = 4 << 20 // gRPC's default bound on a received message
)

// FromWorkloadAPI follows the SVIDs the Workload API at addr (a
// unix:///path address; a bare path is taken as one) gives this process,
// until Close or ctx ends. It returns at once: until the first SVID
// arrives, Current says ErrNone, and the agent's /ready waits. A SPIRE
// agent that is down or has no entry for this workload yet is asked again
// after 1s, 2s, ... up to 5s.
func FromWorkloadAPI(ctx context.Context, addr string, reg prometheus.Registerer, log zerolog.Logger) (*Source, error) {
	path, err := socketPath(addr)
	if err != nil {
		return nil, err
	}
	s, err := newSource(addr, reg, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.stop = func() { cancel(); <-done }
	w := &watcher{s: s, client: &http.Client{Transport: &http2.Transport{
		AllowHTTP: true, // h2c over the socket, as gRPC speaks to a unix address
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
		ReadIdleTimeout: 30 * time.Second, // a dead agent behind a live socket is pinged, then dropped
	}}}
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	return s, nil
}

// socketPath is the path in a Workload API address.
func socketPath(addr string) (string, error) {
	if strings.HasPrefix(addr, "/") {
		return addr, nil
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "unix" || u.Path == "" || u.Host != "" || u.RawQuery != "" {
		return "", fmt.Errorf("%q is not a Workload API address (a unix socket: unix:///run/spire/agent-sockets/spire-agent.sock)", addr)
	}
	return u.Path, nil
}

// watcher keeps one FetchX509SVID stream open, and opens another when it
// ends.
type watcher struct {
	s       *Source
	client  *http.Client
	lastErr string // the last error logged, so that a retry loop logs it once
}

func (w *watcher) run(ctx context.Context) {
	for tries := 0; ctx.Err() == nil; {
		got, err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			tries = 0
		}
		w.failed(err)
		tries++
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(min(tries, 5)) * time.Second):
		}
	}
}

// stream reads one FetchX509SVID stream until it ends, setting each SVID
// it brings; it says whether one came.
func (w *watcher) stream(ctx context.Context) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+fetchX509SVID,
		bytes.NewReader(make([]byte, 5))) // one empty X509SVIDRequest, then the end of the client's stream
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Workload.spiffe.io", "true") // the Workload API's header against SSRF
	resp, err := w.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if err := grpcStatus(resp.Header); err != nil { // a trailers-only answer: no identity issued, say
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("the Workload API answered HTTP %s", resp.Status)
	}
	got := false
	var head [5]byte
	for {
		if _, err := io.ReadFull(resp.Body, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				if err := grpcStatus(resp.Trailer); err != nil {
					return got, err
				}
				return got, errors.New("the Workload API ended the stream")
			}
			return got, err
		}
		n := binary.BigEndian.Uint32(head[1:])
		if head[0] != 0 || n > maxMessage {
			return got, fmt.Errorf("the Workload API sent a message the agent does not read (compressed %d, %d bytes)", head[0], n)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, msg); err != nil {
			return got, err
		}
		id, err := parseX509SVIDResponse(msg)
		if err != nil {
			w.failed(err)
			continue
		}
		got, w.lastErr = true, ""
		w.s.set(id)
	}
}

// failed logs err once for as long as it repeats.
func (w *watcher) failed(err error) {
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		w.s.log.Warn().Err(err).Bool("have_svid", w.s.cur.Load() != nil).
			Msg("the Workload API gave no SVID; asking again (handshakes use the last SVID until it expires)")
	}
}

// grpcStatus is the error a gRPC status in h says, nil for OK or none.
func grpcStatus(h http.Header) error {
	code := h.Get("Grpc-Status")
	if code == "" || code == "0" {
		return nil
	}
	msg, _ := url.PathUnescape(h.Get("Grpc-Message"))
	return fmt.Errorf("the Workload API: gRPC status %s: %s", code, msg)
}

// parseX509SVIDResponse reads an X509SVIDResponse: its first SVID (the
// default one, as go-spiffe takes it) and the bundle of its trust domain.
//
//	message X509SVIDResponse { repeated X509SVID svids = 1; ... }
//	message X509SVID { string spiffe_id = 1; bytes x509_svid = 2; bytes x509_svid_key = 3; bytes bundle = 4; string hint = 5; }
func parseX509SVIDResponse(b []byte) (*Identity, error) {
	var first []byte
	if err := fields(b, func(num protowire.Number, v []byte) {
		if num == 1 && first == nil {
			first = v
		}
	}); err != nil {
		return nil, err
	}
	if first == nil {
		return nil, errors.New("the Workload API sent no SVID")
	}
	var id string
	var chain, key, bundle []byte
	if err := fields(first, func(num protowire.Number, v []byte) {
		switch num {
		case 1:
			id = string(v)
		case 2:
			chain = v
		case 3:
			key = v
		case 4:
			bundle = v
		}
	}); err != nil {
		return nil, err
	}
	svid, err := x509svid.ParseRaw(chain, key)
	if err != nil {
		return nil, fmt.Errorf("the Workload API's SVID: %w", err)
	}
	if svid.ID.String() != id {
		return nil, fmt.Errorf("the Workload API's SVID is %s, its message says %s", svid.ID, id)
	}
	td := svid.ID.TrustDomain()
	bs, err := x509bundle.ParseRaw(td, bundle)
	if err != nil {
		return nil, fmt.Errorf("the Workload API's bundle of %s: %w", td, err)
	}
	return New(svid, bs)
}

// fields calls f with every length-delimited field of the message b; other
// wire types are skipped.
func fields(b []byte, f func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("the Workload API sent a malformed message: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("the Workload API sent a malformed message: %w", protowire.ParseError(m))
			}
			f(num, v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("the Workload API sent a malformed message: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return nil
}
