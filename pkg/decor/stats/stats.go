// Package stats is the per-path "network profiler" of the seed article's
// sequel: for every path the agent has seen, how often it was asked for,
// with which statuses, how fast (p50, p90, p99), how many bytes, and whether
// it is a static asset. The admin endpoint serves it as JSON at /stats.
//
// At most maxPaths distinct paths are tracked; later ones are counted under
// "(other)", so a client requesting random paths cannot grow memory.
package stats

import (
	"encoding/json"
	"math"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Other is the entry for paths beyond the bound.
const Other = "(other)"

// Latency buckets: upper bounds growing by a quarter, from 50us to ~2 minutes.
var bounds = func() []time.Duration {
	var b []time.Duration
	for d := 50 * time.Microsecond; d < 2*time.Minute; d = d * 5 / 4 {
		b = append(b, d)
	}
	return b
}()

// Stats holds the per-path entries.
type Stats struct {
	max   int
	n     atomic.Int64
	paths sync.Map // string -> *entry
}

// entry is one path's record, counted with atomics: requests for one hot
// path take no lock.
type entry struct {
	count    atomic.Int64
	statuses sync.Map       // int -> *atomic.Int64
	buckets  []atomic.Int64 // len(bounds)+1
	bytes    atomic.Int64
}

func newEntry() *entry { return &entry{buckets: make([]atomic.Int64, len(bounds)+1)} }

// New tracks at most maxPaths paths.
func New(maxPaths int) *Stats { return &Stats{max: maxPaths} }

func (s *Stats) entry(p string) *entry {
	if e, ok := s.paths.Load(p); ok {
		return e.(*entry)
	}
	if s.n.Load() >= int64(s.max) {
		p = Other
		if e, ok := s.paths.Load(p); ok {
			return e.(*entry)
		}
	}
	// A copy: the path may be a view into a buffer the next request reuses.
	e, loaded := s.paths.LoadOrStore(strings.Clone(p), newEntry())
	if !loaded && p != Other {
		s.n.Add(1)
	}
	return e.(*entry)
}

// Name is the config key it shares with the metrics.
func (s *Stats) Name() string { return "stats" }

// Done records one finished exchange.
func (s *Stats) Done(ex *exchange.Exchange) {
	s.Observe(ex.Path, ex.Status, time.Since(ex.Start), ex.Sent+ex.Received())
}

// Observe records one request for path p.
func (s *Stats) Observe(p string, status int, d time.Duration, bytes int64) {
	i := sort.Search(len(bounds), func(i int) bool { return bounds[i] >= d })
	e := s.entry(p)
	e.buckets[i].Add(1)
	e.bytes.Add(bytes)
	n, ok := e.statuses.Load(status)
	if !ok {
		n, _ = e.statuses.LoadOrStore(status, new(atomic.Int64))
	}
	n.(*atomic.Int64).Add(1)
	e.count.Add(1)
}

// Path is one path's report.
type Path struct {
	Path     string           `json:"path"`
	Count    int64            `json:"count"`
	Statuses map[string]int64 `json:"statuses"`
	P50ms    float64          `json:"p50_ms"`
	P90ms    float64          `json:"p90_ms"`
	P99ms    float64          `json:"p99_ms"`
	Bytes    int64            `json:"bytes"`
	Static   bool             `json:"static_asset"`
}

// Report is every path, most requested first.
func (s *Stats) Report() []Path {
	var out []Path
	s.paths.Range(func(k, v any) bool {
		e := v.(*entry)
		// A snapshot while requests are counted: the quantiles use the
		// buckets' own total, so they stay consistent with each other.
		buckets := make([]int64, len(e.buckets))
		var total int64
		for i := range e.buckets {
			buckets[i] = e.buckets[i].Load()
			total += buckets[i]
		}
		p := Path{Path: k.(string), Count: e.count.Load(), Bytes: e.bytes.Load(), Statuses: map[string]int64{}, Static: Static(k.(string))}
		e.statuses.Range(func(st, n any) bool {
			p.Statuses[itoa(st.(int))] = n.(*atomic.Int64).Load()
			return true
		})
		p.P50ms, p.P90ms, p.P99ms = quantile(buckets, total, .5), quantile(buckets, total, .9), quantile(buckets, total, .99)
		out = append(out, p)
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// quantile is the upper bound of the bucket holding the q-th request, in ms:
// accurate to the bucket width (25%).
func quantile(buckets []int64, count int64, q float64) float64 {
	if count == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(count)))
	var seen int64
	for i, n := range buckets {
		seen += n
		if seen >= rank {
			if i == len(bounds) {
				return float64(bounds[len(bounds)-1].Microseconds()) / 1000
			}
			return float64(bounds[i].Microseconds()) / 1000
		}
	}
	return 0
}

var staticExt = map[string]bool{
	".css": true, ".js": true, ".mjs": true, ".map": true, ".png": true, ".jpg": true, ".jpeg": true,
	".gif": true, ".svg": true, ".ico": true, ".webp": true, ".avif": true, ".woff": true, ".woff2": true,
	".ttf": true, ".otf": true, ".eot": true, ".mp4": true, ".webm": true, ".mp3": true, ".wasm": true,
}

// Static reports whether p names a static asset (a stylesheet, script,
// image, font or media file) rather than a page or an API endpoint.
func Static(p string) bool { return staticExt[strings.ToLower(path.Ext(p))] }

// ServeHTTP serves the report as JSON.
func (s *Stats) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(map[string]any{"paths": s.Report()})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [8]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
