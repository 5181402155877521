//go:build linux

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// scale is how hard TestLoad pushes: the quick figures run in make test, the
// full ones (VENEER_RELIABILITY=full) in make reliability.
type scale struct {
	sequential, bursts, burstSize, keepAlive int
	keepAliveFor                             time.Duration
	bulk                                     int64
}

func loadScale() scale {
	if os.Getenv("VENEER_RELIABILITY") == "full" {
		return scale{sequential: 10000, bursts: 10, burstSize: 1000, keepAlive: 1000, keepAliveFor: time.Minute, bulk: 1 << 30}
	}
	return scale{sequential: 1000, bursts: 5, burstSize: 100, keepAlive: 50, keepAliveFor: 3 * time.Second, bulk: 64 << 20}
}

// gauge reads an unlabelled metric of the agent.
func (p *pod) gauge(name string) float64 {
	p.t.Helper()
	mf, ok := p.families()[name]
	if !ok || len(mf.GetMetric()) == 0 {
		p.t.Fatalf("the agent does not export %s", name)
	}
	m := mf.GetMetric()[0]
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

type usage struct{ goroutines, fds, heapMiB, rssMiB float64 }

func (p *pod) usage() usage {
	return usage{
		goroutines: p.gauge("go_goroutines"),
		fds:        p.gauge("process_open_fds"),
		heapMiB:    p.gauge("go_memstats_heap_inuse_bytes") / (1 << 20),
		rssMiB:     p.gauge("process_resident_memory_bytes") / (1 << 20),
	}
}

// Connections opened and closed in sequence and in bursts, many concurrent
// keep-alive clients, and large bodies each way: no error the app did not
// cause, every byte intact, and afterwards no growth in goroutines or open
// file descriptors.
func TestLoad(t *testing.T) {
	t.Parallel()
	sc := loadScale()
	p := newPod(t)
	p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090")
	// Pooled connections to the app idle out after 1s here (90s by
	// default), so that "back to the baseline" can be seen soon.
	p.startAgent("--upstream-idle-timeout", "1s")
	url := fmt.Sprintf("http://%s:9090/load", localpod.PodIP)
	oneShot := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext, DisableKeepAlives: true}}
	get := func(c *http.Client) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	p.get(url) // warm up: the pool and the runtime's first allocations
	before := p.usage()

	var errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if err != nil {
			errs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	}
	start := time.Now()
	for i := 0; i < sc.sequential; i++ {
		fail(get(oneShot))
	}
	seqTime := time.Since(start)

	start = time.Now()
	for b := 0; b < sc.bursts; b++ {
		var wg sync.WaitGroup
		for i := 0; i < sc.burstSize; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); fail(get(oneShot)) }()
		}
		wg.Wait()
	}
	burstTime := time.Since(start)

	var requests atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(sc.keepAliveFor)
	for i := 0; i < sc.keepAlive; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext, MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for time.Now().Before(deadline) {
				fail(get(c))
				requests.Add(1)
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	during := p.usage()
	wg.Wait()

	// Large bodies each way, checksummed end to end.
	sum := sha256.New()
	io.Copy(sum, io.LimitReader(zeros{}, sc.bulk))
	want := fmt.Sprintf("%d %s", sc.bulk, hex.EncodeToString(sum.Sum(nil)))
	bulk := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{DialContext: p.Client.DialContext}}
	start = time.Now()
	resp, err := bulk.Post(fmt.Sprintf("http://%s:9090/sha256", localpod.PodIP), "application/octet-stream", io.LimitReader(zeros{}, sc.bulk))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != want {
		t.Errorf("upload of %d bytes: the app hashed %q; want %q", sc.bulk, got, want)
	}
	upTime := time.Since(start)
	start = time.Now()
	resp, err = bulk.Get(fmt.Sprintf("http://%s:9090/download?size=%d", localpod.PodIP, sc.bulk))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if got := fmt.Sprintf("%d %s", n, hex.EncodeToString(h.Sum(nil))); got != want {
		t.Errorf("download: %q; want %q", got, want)
	}
	downTime := time.Since(start)
	bulk.CloseIdleConnections()

	if errs.Load() != 0 {
		t.Errorf("%d requests failed (first: %v); want none", errs.Load(), firstErr.Load())
	}
	p.waitFor("every connection closed", func() bool { return p.metric("veneer_tcp_active_connections", "9090") == 0 })
	var after usage
	// Pooled connections to the app close within a second of their idle
	// timeout: wait for it.
	p.waitFor("goroutines and open files back to the baseline", func() bool {
		after = p.usage()
		return after.goroutines <= before.goroutines+5 && after.fds <= before.fds+5
	})
	// The heap is only given back at the next collection, which an idle
	// agent runs within two minutes (the runtime forces one): wait for it.
	for wait := time.Now().Add(150 * time.Second); after.heapMiB > before.heapMiB+16 && time.Now().Before(wait); {
		time.Sleep(time.Second)
		after = p.usage()
	}
	if after.heapMiB > before.heapMiB+16 {
		t.Errorf("heap in use: %.1f MiB before, %.1f MiB after; want no lasting growth", before.heapMiB, after.heapMiB)
	}
	t.Logf("load: %d sequential connections in %v (%.0f/s); %d bursts of %d in %v; %d keep-alive clients, %d requests in %v; %d MiB up in %v, down in %v, checksums equal; %d errors",
		sc.sequential, seqTime.Round(time.Millisecond), float64(sc.sequential)/seqTime.Seconds(), sc.bursts, sc.burstSize, burstTime.Round(time.Millisecond),
		sc.keepAlive, requests.Load(), sc.keepAliveFor, sc.bulk>>20, upTime.Round(time.Millisecond), downTime.Round(time.Millisecond), errs.Load())
	t.Logf("agent: before goroutines %.0f fds %.0f heap %.1f MiB rss %.1f MiB; under keep-alive load goroutines %.0f fds %.0f heap %.1f MiB rss %.1f MiB; after goroutines %.0f fds %.0f heap %.1f MiB rss %.1f MiB",
		before.goroutines, before.fds, before.heapMiB, before.rssMiB, during.goroutines, during.fds, during.heapMiB, during.rssMiB,
		after.goroutines, after.fds, after.heapMiB, after.rssMiB)
}
