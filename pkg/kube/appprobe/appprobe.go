// Package appprobe runs the kubelet's probes of the app for it, from the
// agent, as Istio's probe rewrite does. On a strict mTLS port the kubelet,
// which is no meshed peer, would be refused; so veneerctl inject points
// the app's httpGet and tcpSocket probes at the agent's admin port,
// /app-health/<container>/<kind>, and hands the agent the probes as they
// were (VENEER_APP_PROBES). The agent runs each on the pod's loopback,
// where its own connections are never captured, and answers with what the
// app said.
//
//	VENEER_APP_PROBES='{"/app-health/web/readyz":{"httpGet":{"path":"/healthz","port":8080}}}'
//	GET :15000/app-health/web/readyz -> GET 127.0.0.1:8080/healthz -> 200 (or the app's status)
package appprobe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every rewritten probe's path.
const Prefix = "/app-health/"

// Probe is one of the app's probes as the agent runs it: an HTTP GET or a
// TCP connect, to a port of the pod.
type Probe struct {
	HTTPGet   *HTTPGet   `json:"httpGet,omitempty"`
	TCPSocket *TCPSocket `json:"tcpSocket,omitempty"`
}

// HTTPGet is an httpGet probe: path, port, scheme (HTTP or HTTPS), the
// Host header and other headers.
type HTTPGet struct {
	Path     string   `json:"path,omitempty"`
	Port     int      `json:"port"`
	PortName string   `json:"portName,omitempty"` // the container port's name, when the probe named it (for uninject)
	Scheme   string   `json:"scheme,omitempty"`
	Host     string   `json:"host,omitempty"`
	Headers  []Header `json:"httpHeaders,omitempty"`
}

// Header is a header of an httpGet probe.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocket is a tcpSocket probe.
type TCPSocket struct {
	Port     int    `json:"port"`
	PortName string `json:"portName,omitempty"`
}

// Path is the rewritten probe's path for a container's probe of a kind
// (livez, readyz, startupz).
func Path(container, kind string) string { return Prefix + container + "/" + kind }

// Parse reads the probes, by their rewritten paths, and says what is wrong
// with a bad one.
func Parse(s string) (map[string]Probe, error) {
	var ps map[string]Probe
	if err := json.Unmarshal([]byte(s), &ps); err != nil {
		return nil, fmt.Errorf("not a JSON object of probes by path: %v", err)
	}
	for path, p := range ps {
		if !strings.HasPrefix(path, Prefix) {
			return nil, fmt.Errorf("%q: a probe's path starts with %s", path, Prefix)
		}
		switch {
		case (p.HTTPGet == nil) == (p.TCPSocket == nil):
			return nil, fmt.Errorf("%q: a probe is an httpGet or a tcpSocket, one of them", path)
		case p.HTTPGet != nil && (p.HTTPGet.Port < 1 || p.HTTPGet.Port > 65535):
			return nil, fmt.Errorf("%q: port %d is not a port (1-65535)", path, p.HTTPGet.Port)
		case p.HTTPGet != nil && !slices.Contains([]string{"", "HTTP", "HTTPS"}, p.HTTPGet.Scheme):
			return nil, fmt.Errorf("%q: scheme %q is not HTTP or HTTPS", path, p.HTTPGet.Scheme)
		case p.TCPSocket != nil && (p.TCPSocket.Port < 1 || p.TCPSocket.Port > 65535):
			return nil, fmt.Errorf("%q: port %d is not a port (1-65535)", path, p.TCPSocket.Port)
		}
	}
	return ps, nil
}

// maxWait bounds a probe the kubelet's own timeout did not end first.
const maxWait = 10 * time.Second

// Handler answers GET /app-health/... by running the probe registered at
// the path: 200 when it passes (an httpGet's status, 200-399, as the app
// gave it), 503 when it fails, 404 for a path with no probe.
func Handler(probes map[string]Probe) http.Handler {
	// The kubelet does not follow redirects to other hosts nor verify the
	// app's certificate; neither does this.
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := probes[r.URL.Path]
		if !ok {
			http.Error(w, "no probe at "+r.URL.Path, http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), maxWait)
		defer cancel()
		if p.TCPSocket != nil {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.TCPSocket.Port)))
			if err != nil {
				http.Error(w, "tcpSocket probe failed: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			c.Close()
			w.Write([]byte("ok\n"))
			return
		}
		status, err := get(ctx, client, p.HTTPGet)
		switch {
		case err != nil:
			http.Error(w, "httpGet probe failed: "+err.Error(), http.StatusServiceUnavailable)
		case status < 200 || status >= 400:
			http.Error(w, fmt.Sprintf("httpGet probe: the app answered %d", status), status)
		default:
			w.WriteHeader(status)
		}
	})
}

// get runs an httpGet probe against the pod's loopback.
func get(ctx context.Context, client *http.Client, g *HTTPGet) (int, error) {
	scheme := "http"
	if g.Scheme == "HTTPS" {
		scheme = "https"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(g.Port))+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "kube-probe (veneer-agent)")
	for _, h := range g.Headers {
		req.Header.Add(h.Name, h.Value)
	}
	if g.Host != "" {
		req.Host = g.Host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
