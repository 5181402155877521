//go:build linux

package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// The agent killed: captured ports fail closed (refused, never delivered
// around the agent); a restarted agent serves again at once.
func TestAgentKilledFailsClosed(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	app := p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent()
	if resp, _ := p.getPath(9090, "/before"); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	agent.cmd.Process.Signal(syscall.SIGKILL)
	<-agent.done
	agent.done <- nil // for the clean-up
	_, err := p.dial(9090, time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connecting with the agent dead: %v; want connection refused", err)
	}
	if n := app.count("/during"); n != 0 {
		t.Errorf("the app was reached %d times with the agent dead", n)
	}
	p.startAgent()
	if resp, _ := p.getPath(9090, "/after"); resp.StatusCode != 200 {
		t.Errorf("after the restart: %d; want 200 at once", resp.StatusCode)
	}
}

// The app down: HTTP gets a fast 503 UF and recovers by itself when the app
// listens again; an app that dies mid-response ends the client's response
// (it never hangs) and the next request after its restart succeeds.
func TestAppDownAndRestarting(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.mustInit("--inbound-ports", "9090")
	p.startAgent("--config", p.writeConfig("ports: {\"9090\": {protocol: http}}\n"))
	if resp, body := p.getPath(9090, "/"); resp.StatusCode != 503 || !strings.Contains(body, "not reachable") {
		t.Fatalf("app down: %d %q; want 503 from the agent", resp.StatusCode, body)
	}
	l, err := p.Pod.Pod.Listen("tcp", ":9090")
	if err != nil {
		t.Fatal(err)
	}
	app := &testApp{hold: make(chan struct{})}
	srv := &http.Server{Handler: app}
	go srv.Serve(l)
	if resp, _ := p.getPath(9090, "/"); resp.StatusCode != 200 {
		t.Fatalf("app back: %d; want 200 with no restart of the agent", resp.StatusCode)
	}
	// Mid-stream: a 100 MiB download, the app closed while it flows.
	resp, err := p.client(p.Client).Get(fmt.Sprintf("http://%s:9090/download", localpod.PodIP))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	io.ReadFull(resp.Body, buf) // some of it
	srv.Close()                 // the app dies
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && n+int64(len(buf)) == 100<<20 {
		t.Errorf("the download completed although the app died")
	}
	if resp, body := p.getPath(9090, "/"); resp.StatusCode != 503 {
		t.Errorf("app dead again: %d %q; want 503", resp.StatusCode, body)
	}
	l, err = p.Pod.Pod.Listen("tcp", ":9090")
	if err != nil {
		t.Fatal(err)
	}
	srv = &http.Server{Handler: app}
	go srv.Serve(l)
	defer srv.Close()
	if resp, _ := p.getPath(9090, "/"); resp.StatusCode != 200 {
		t.Errorf("app restarted: %d; want 200", resp.StatusCode)
	}
}

// A rolling restart of the agent under load: a new agent binds the same
// ports (SO_REUSEPORT), the old one is sent SIGTERM and drains; not one
// request fails and none gets a 5xx.
func TestRollingRestartUnderLoad(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.startTestApp(":9090")
	p.mustInit("--inbound-ports", "9090")
	old := p.startAgent("--drain-quiet", "300ms")

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fresh connection per request, as clients arriving during
			// a rollout do, and keep-alive ones, as clients already there.
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.Client.DialContext, DisableKeepAlives: i%2 == 0}}
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(fmt.Sprintf("http://%s:9090/load", localpod.PodIP))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v (keep-alive %v)", err, i%2 != 0))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	// The new agent: same ports, both serve, then the old one drains.
	neu := p.start(1337, filepath.Join(bin, "veneer-agent"), "--drain-quiet", "300ms")
	p.waitFor("both agents serving", func() bool { return ok.Load() > 50 })
	time.Sleep(300 * time.Millisecond)
	old.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-old.done:
		old.done <- err
		if err != nil {
			t.Errorf("the old agent exited with %v; want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the old agent did not finish draining")
	}
	time.Sleep(500 * time.Millisecond) // the new agent alone
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		for _, a := range []*proc{old, neu} {
			for _, l := range strings.Split(a.log.String(), "\n") {
				if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || (strings.Contains(l, `"end":`) && !strings.Contains(l, `"end":"http"`)) || strings.Contains(l, "draining") || strings.Contains(l, "stopped") || strings.Contains(l, `"status":5`) || strings.Contains(l, `"status":0`) {
					t.Log(l)
				}
			}
		}
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("%d requests failed (first: %v), %d succeeded; want none failed", failed.Load(), firstErr.Load(), ok.Load())
	}
	t.Logf("rolling restart: %d requests, %d failed", ok.Load()+failed.Load(), failed.Load())
}

// The endpoints that change state listen on the pod's loopback only.
func TestAdminLocalOnly(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent()
	if _, err := p.dial(15009, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the state-changing admin port from outside the pod: %v; want connection refused", err)
	}
	inPod := p.client(p.Pod.Pod)
	req, _ := http.NewRequest("PUT", "http://127.0.0.1:15009/log-level?level=debug", nil)
	if resp, err := inPod.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT /log-level from inside the pod: %v %v", resp, err)
	}
	if resp, err := inPod.Post("http://127.0.0.1:15000/drain", "", nil); err != nil || resp.StatusCode == 200 {
		t.Errorf("POST /drain on the public admin port: %v %v; want it refused", resp, err)
	}
	if resp, err := inPod.Post("http://127.0.0.1:15009/drain", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /drain from inside the pod: %v %v", resp, err)
	}
	select {
	case err := <-agent.done:
		agent.done <- err
		if err != nil {
			t.Errorf("the agent exited with %v after the drain; want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not drain and exit")
	}
}

// Istio's known gap, made visible: another process of the pod running as
// the agent's UID is reported.
func TestProxyUIDLoophole(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.start(1337, "sleep", "30")
	p.mustInit("--inbound-ports", "9090")
	agent := p.startAgent()
	p.waitFor("the warning", func() bool {
		l := agent.log.String()
		return strings.Contains(l, `"process":"sleep"`) && strings.Contains(l, "another process of the pod runs as the agent's UID")
	})
	if n := p.gauge("veneer_proxy_uid_processes"); n != 1 {
		t.Errorf("veneer_proxy_uid_processes = %v; want 1 (the sleep, not agents of other pods)", n)
	}
}
