//go:build linux

package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load is GET requests from the node to a URL (a Service's ClusterIP, so
// kube-proxy picks the pod), from clients that keep their connection and
// clients that open one per request, each at most one request every 10 ms,
// until stopped. It counts what came back.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	kinds      map[string]*failures // by kind
	last       time.Time            // the last failure
	mark       time.Time            // what failures' times are told from (start, or Mark)
	cancel     context.CancelFunc
	done       sync.WaitGroup
}

// failures are the failures of one kind: how many, the first and the last.
type failures struct {
	n           int
	first, last time.Time
}

// Mark sets the moment failures are told from in stop's summary (the
// fault's start).
func (l *load) Mark() {
	l.mu.Lock()
	l.mark = time.Now()
	l.mu.Unlock()
}

// startLoad starts keepAlive and fresh clients against url.
func startLoad(t *testing.T, url string, keepAlive, fresh int) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // bounded whatever happens
	l := &load{kinds: map[string]*failures{}, cancel: cancel, mark: time.Now()}
	client := func(reuse bool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: k.node.DialContext, DisableKeepAlives: !reuse, MaxIdleConnsPerHost: 1}}
	}
	for i := range keepAlive + fresh {
		c := client(i < keepAlive)
		l.done.Go(func() { l.run(ctx, c, url) })
	}
	return l
}

func (l *load) run(ctx context.Context, c *http.Client, url string) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if ctx.Err() != nil {
			return
		}
		kind := ""
		if err != nil {
			kind = failureKind(err)
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				kind = fmt.Sprintf("HTTP %d %s", resp.StatusCode, resp.Header.Get("X-Veneer-Flags"))
			}
		}
		if kind == "" {
			l.ok.Add(1)
			continue
		}
		l.failed.Add(1)
		now := time.Now()
		l.mu.Lock()
		f := l.kinds[kind]
		if f == nil {
			f = &failures{first: now}
			l.kinds[kind] = f
		}
		f.n++
		f.last, l.last = now, now
		l.mu.Unlock()
	}
}

// failureKind names a client error: refused, reset, EOF, timeout, or the
// error itself.
func failureKind(err error) string {
	var ne net.Error
	switch s := err.Error(); {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	case strings.Contains(s, "EOF"):
		return "EOF"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return s
	}
}

// stop stops the clients and returns a summary of what they saw.
func (l *load) stop() string {
	l.cancel()
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	var kinds []string
	for k, f := range l.kinds {
		kinds = append(kinds, fmt.Sprintf("%s: %d (%.2fs to %.2fs)", k, f.n, f.first.Sub(l.mark).Seconds(), f.last.Sub(l.mark).Seconds()))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d ok, %d failed %v", l.ok.Load(), l.failed.Load(), kinds)
}

// waitServing waits until requests succeed again: for a whole second none
// failed and some succeeded.
func (l *load) waitServing(t *testing.T, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "serving again", func() (bool, string) {
		ok := l.ok.Load()
		time.Sleep(time.Second)
		l.mu.Lock()
		since := time.Since(l.last)
		l.mu.Unlock()
		return since >= time.Second && l.ok.Load() > ok, fmt.Sprintf("the last failure %s ago", since.Round(time.Millisecond))
	})
}

// nodeServiceURL returns the URL of port 8080 of a Service once it answers
// from the node (see serviceURL).
func nodeServiceURL(t *testing.T, ns, name string) string {
	t.Helper()
	url := fmt.Sprintf("http://%s:8080/", get(t, ns, "service/"+name, "{.spec.clusterIP}"))
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: k.node.DialContext, DisableKeepAlives: true}}
	eventually(t, 30*time.Second, "the Service "+name+" answers from the node", func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return url
}
