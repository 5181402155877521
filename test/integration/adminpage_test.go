//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// The admin page in a real browser: headless Chromium, driven over the
// DevTools protocol, opens the agent's page through a port-forward to the
// pod's loopback (as `kubectl port-forward pod/NAME 15000` gives a user)
// while clients send requests. The tap is refused from the pod network.
// The charts draw, the request count on the page is /metrics', a request
// made after the page opened shows in the tap, credentials never reach the
// page, and a path with markup in it stays text.
func TestAdminPageInABrowser(t *testing.T) {
	t.Parallel()
	requireTool(t, "chromium")
	p := newPod(t)
	p.startApp("")
	p.startTestApp(":8081")
	p.mustInit("--inbound-ports", "8080,8081")
	p.startAgent("--config", p.writeConfig(`default: {protocol: http, http: {requestId: true}}
ports: {"8080": {protocol: http, routes: [{prefix: /chaos, fault: {abort: {status: 503, percent: 100}}}]}}
`))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Into the pod's own loopback, as kubectl port-forward goes: the tap
	// answers there only.
	go p.Pod.Pod.Forward(ln, "127.0.0.1:15000")
	t.Cleanup(func() { ln.Close() })
	page := "http://" + ln.Addr().String() + "/"
	// From the pod network the tap is refused (the page and /metrics are not).
	if resp, err := p.client(p.Pod.Client).Get(fmt.Sprintf("http://%s:15000/tap", localpod.PodIP)); err != nil || resp.StatusCode != 403 {
		t.Fatalf("the tap from the client namespace: %v %v; want 403", resp, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("chromium"), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 2000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// Every event the page's streams received, to look for credentials in.
	var mu sync.Mutex
	var streamed strings.Builder
	err = chromedp.Listen(bctx, func(ev any) {
		if m, ok := ev.(*network.EventEventSourceMessageReceived); ok {
			mu.Lock()
			streamed.WriteString(m.Data + "\n")
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	waitJS := func(what, js string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !evalJS[bool](t, bctx, js) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (%s)", what, js)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enabling the network domain: %v", err)
	}
	do("opening the page", chromedp.Navigate(page))
	waitJS("the first points", `window.veneer.points >= 2`)

	// Traffic after the page opened: the app's pages, injected faults, a
	// path with markup in it, and a login carrying credentials both ways.
	const secret = "s3cret-value"
	stop := time.Now().Add(4 * time.Second)
	for time.Now().Before(stop) {
		p.getPath(8080, "/")
		p.getPath(8080, "/chaos")
		time.Sleep(40 * time.Millisecond)
	}
	p.getPath(8080, "/x%3Cimg%20id%3Dinjected%20src%3Dx%3E")
	resp, _ := p.getPath(8081, "/login", "Authorization", "Bearer auth-"+secret, "Cookie", "id=cookie-"+secret)
	if !strings.Contains(resp.Header.Get("Set-Cookie"), secret) {
		t.Fatalf("the app's Set-Cookie %q; the test needs it to carry the secret", resp.Header.Get("Set-Cookie"))
	}

	// The tap shows the login, with its headers redacted.
	waitJS("the login in the tap", `[...document.querySelectorAll("#tap td.path")].some((td) => td.textContent === "/login")`)
	do("opening the login's headers", chromedp.Click(chromedp.Search(`//tr[contains(@class,"row")][td[@class="path" and text()="/login"]]`)))
	headers := text("#tap tr.headers td")
	for _, want := range []string{"Authorization: [redacted]", "Cookie: [redacted]", "Set-Cookie: [redacted]", "X-Request-Id: "} {
		if !strings.Contains(headers, want) {
			t.Errorf("the login's headers on the page:\n%s\nwant %q", headers, want)
		}
	}
	// Markup in a path is text.
	if evalJS[bool](t, bctx, `document.getElementById("injected") !== null`) {
		t.Error("a path's markup became an element of the page")
	}
	waitJS("the markup path as text", `[...document.querySelectorAll("#tap td.path")].some((td) => td.textContent === "/x<img id=injected src=x>")`)

	// The page's request count is /metrics', once traffic stopped.
	var total, shown string
	deadline := time.Now().Add(10 * time.Second)
	for {
		total = fmt.Sprintf("%.0f", p.requestsTotal())
		shown = text("#requests-total")
		if strings.ReplaceAll(shown, ",", "") == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if strings.ReplaceAll(shown, ",", "") != total {
		t.Errorf("the page shows %s requests; /metrics counts %s", shown, total)
	}

	// The charts drew: points with traffic in them, and ink on each canvas.
	drew := evalJS[struct {
		RPS, FI bool
		Inked   []int
	}](t, bctx, `(() => {
		const c = window.veneer.charts;
		const fi = c.flags.names.indexOf("FI");
		const inked = [...document.querySelectorAll("#charts canvas")].map((cv) => {
			const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
			let n = 0;
			for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
			return n;
		});
		return {RPS: c.rps.data[1].some((v) => v > 0), FI: fi >= 0 && c.flags.data[fi + 1].some((v) => v > 0), Inked: inked};
	})()`)
	if !drew.RPS || !drew.FI || len(drew.Inked) != 6 {
		t.Errorf("charts: requests drawn %v, FI drawn %v, %d canvases; want both, and 6", drew.RPS, drew.FI, len(drew.Inked))
	}
	for i, n := range drew.Inked {
		if n == 0 {
			t.Errorf("canvas %d is blank", i)
		}
	}

	// The profiler's table lists the paths and sorts by a click.
	waitJS("the profiler's rows", `[...document.querySelectorAll("#paths td.path")].some((td) => td.textContent === "/chaos")`)
	do("sorting by path", chromedp.Click(chromedp.CSS(`#paths th[data-key="path"]`)))
	if !evalJS[bool](t, bctx, `(() => { const ps = [...document.querySelectorAll("#paths td.path")].map((td) => td.textContent);
		return ps.length > 2 && ps.every((v, i) => i === 0 || ps[i-1] <= v); })()`) {
		t.Error("the profiler's table is not sorted by path after a click on its heading")
	}

	// No credential reached the page: not its text, not its streams.
	html, err := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	mu.Lock()
	events := streamed.String()
	mu.Unlock()
	if !strings.Contains(events, "/login") {
		t.Errorf("the streams the page received lack the login: %.300s", events)
	}
	if strings.Contains(html, secret) || strings.Contains(events, secret) {
		t.Errorf("a redacted credential reached the page (in its text %v, in its streams %v)", strings.Contains(html, secret), strings.Contains(events, secret))
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking a screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 1000 {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join(os.TempDir(), "veneer-admin-page.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the admin page: %s (%dx%d)", out, img.Bounds().Dx(), img.Bounds().Dy())
}

// evalJS is the value of the expression js on the page.
func evalJS[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %.60s: %v", js, err)
	}
	return v
}

// requestsTotal is the sum of veneer_requests_total in the agent's /metrics.
func (p *pod) requestsTotal() float64 {
	p.t.Helper()
	var n float64
	for _, m := range p.families()["veneer_requests_total"].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}
