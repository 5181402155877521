package identity

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// FromWorkloadAPI follows the SVIDs the Workload API at addr (a
// unix:///path address; a bare path is taken as one) gives this process,
// until Close or ctx ends. It returns at once: until the first SVID
// arrives, Current says ErrNone, and the agent's /ready waits. A SPIRE
// agent that is down or has no entry for this workload yet is asked again,
// after 1s, 2s, ... up to 5s (go-spiffe's own wait grows to 30s, which
// would hold a pod back long after SPIRE came up).
func FromWorkloadAPI(ctx context.Context, addr string, reg prometheus.Registerer, log zerolog.Logger) (*Source, error) {
	if addr == "" {
		return nil, fmt.Errorf("no Workload API address")
	}
	if addr[0] == '/' {
		addr = "unix://" + addr
	}
	if err := workloadapi.ValidateAddress(addr); err != nil {
		return nil, fmt.Errorf("%q is not a Workload API address (e.g. unix:///run/spire/agent-sockets/spire-agent.sock): %w", addr, err)
	}
	s, err := newSource(addr, reg, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		workloadapi.WatchX509Context(ctx, &watcher{s: s},
			workloadapi.WithAddr(addr), workloadapi.WithBackoffStrategy(backoff{}))
	}()
	return s, nil
}

// watcher takes the Workload API's updates.
type watcher struct {
	s       *Source
	lastErr string // the last error logged, so that a retry loop logs it once
}

func (w *watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	if len(c.SVIDs) == 0 {
		w.OnX509ContextWatchError(fmt.Errorf("the Workload API sent no SVID"))
		return
	}
	id, err := New(c.DefaultSVID(), c.Bundles)
	if err != nil {
		w.OnX509ContextWatchError(err)
		return
	}
	w.lastErr = ""
	w.s.set(id)
}

func (w *watcher) OnX509ContextWatchError(err error) {
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		w.s.log.Warn().Err(err).Bool("have_svid", w.s.cur.Load() != nil).
			Msg("the Workload API gave no SVID; asking again (handshakes use the last SVID until it expires)")
	}
}

// backoff waits 1s, 2s, ... up to 5s between tries.
type backoff struct{ n int }

func (backoff) NewBackoff() workloadapi.Backoff { return &backoff{} }

func (b *backoff) Next() time.Duration {
	b.n++
	return time.Duration(math.Min(float64(b.n), 5)) * time.Second
}

func (b *backoff) Reset() { b.n = 0 }
