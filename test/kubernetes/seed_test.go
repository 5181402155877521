//go:build linux

package kubernetes

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deploySeed applies the seed's manifest as make manifests wrote it
// (python-native.yaml or python-classic.yaml) into ns and waits for the
// rollout: Ready means the app's readiness probe passed.
func deploySeed(t *testing.T, ns, variant string) (pod, podIP string) {
	t.Helper()
	kubectl(t, "apply", "-n", ns, "-f", repo("deploy/kubernetes/python-"+variant+".yaml"))
	kubectl(t, "rollout", "status", "-n", ns, "deployment/python", "--timeout=180s")
	return podOf(t, ns, "app=python")
}

// TestSeedScenario is the seed's scenario in a real cluster, for both
// sidecar kinds: a client pod reaches the unmodified Python server through
// its Service, the agent logs and counts what it forwarded, the app sees
// only the agent, the kubelet's probes pass through the capture, and the
// ConfigMap's authorization rule answers 403.
func TestSeedScenario(t *testing.T) {
	need(t)
	for _, variant := range []string{"native", "classic"} {
		t.Run(variant, func(t *testing.T) {
			ns := newNamespace(t, "seed-"+variant)
			pod, podIP := deploySeed(t, ns, variant)
			_, clientIP := clientPod(t, ns)
			url := serviceURL(t, ns, "python")

			for i := range 3 {
				if got := status(t, ns, url); got != "200" {
					t.Fatalf("request %d to the Service %s: got %s; want 200", i, url, got)
				}
			}

			// The access log, through kubectl logs, has the client's
			// requests with request ids.
			var mine []map[string]any
			eventually(t, 10*time.Second, "the access log has the client's 3 requests", func() (bool, string) {
				mine = nil
				for _, l := range accessLines(logs(t, ns, pod, "veneer-agent")) {
					if strings.HasPrefix(fmt.Sprint(l["client_address"]), clientIP+":") && l["path"] == "/" {
						mine = append(mine, l)
					}
				}
				return len(mine) >= 3, fmt.Sprintf("%d lines from %s", len(mine), clientIP)
			})
			for _, l := range mine {
				if l["status"] != float64(200) || len(fmt.Sprint(l["request_id"])) != 36 || l["direction"] != "inbound" {
					t.Errorf("access log line %v: want status 200, inbound, a 36-character request id", l)
				}
			}

			// /metrics, scraped from another pod as Prometheus would,
			// counts them too (and the kubelet's probes).
			metrics := curl(t, ns, fmt.Sprintf("http://%s:15000/metrics", podIP))
			if n := sum(metrics, "veneer_requests_total", `code="200"`, `direction="inbound"`, `method="GET"`, `port="8080"`); n < 3 {
				t.Errorf("veneer_requests_total for GET 200 on 8080: got %v; want at least the client's 3", n)
			}

			// The app sees the agent, at the pod's own address, as the
			// peer of every request: the client's and the kubelet's.
			appLog := logs(t, ns, pod, "python")
			peers := regexp.MustCompile(`(?m)^(\S+) - - \[.*\] "GET `).FindAllStringSubmatch(appLog, -1)
			if len(peers) < 3 {
				t.Fatalf("the app logged %d requests; want at least 3:\n%s", len(peers), appLog)
			}
			for _, p := range peers {
				if p[1] != podIP {
					t.Errorf("the app saw a request from %s; want only the agent, at the pod's %s", p[1], podIP)
				}
			}

			// The kubelet's probes pass through the capture: its
			// readiness GETs are in the agent's access log, and its
			// prober counts both probes successful, none failed.
			probed := false
			for _, l := range accessLines(logs(t, ns, pod, "veneer-agent")) {
				probed = probed || strings.HasPrefix(fmt.Sprint(l["user_agent"]), "kube-probe/")
			}
			if !probed {
				t.Error("no kube-probe request in the agent's access log: the readiness probe did not go through the agent")
			}
			before := probeCounts(t, ns, pod, "python")
			eventually(t, 40*time.Second, "the kubelet's liveness and readiness probes of the app succeed again", func() (bool, string) {
				now := probeCounts(t, ns, pod, "python")
				return now["Liveness/successful"] > before["Liveness/successful"] && now["Readiness/successful"] > before["Readiness/successful"],
					fmt.Sprintf("before %v, now %v", before, now)
			})
			if after := probeCounts(t, ns, pod, "python"); after["Liveness/failed"] > 0 || after["Readiness/failed"] > before["Readiness/failed"] {
				t.Errorf("the app's probes failed once it was ready: before %v, after %v", before, after)
			}

			// The ConfigMap's rule: /admin is denied by the agent and
			// never reaches the app.
			if got := status(t, ns, url+"admin/secrets"); got != "403" {
				t.Errorf("GET /admin/secrets: got %s; want 403 from the ConfigMap's authz rule", got)
			}
			eventually(t, 10*time.Second, "the denial is in the access log with flag DENY", func() (bool, string) {
				for _, l := range accessLines(logs(t, ns, pod, "veneer-agent")) {
					if l["path"] == "/admin/secrets" && l["response_flags"] == "DENY" && l["status"] == float64(403) {
						return true, ""
					}
				}
				return false, "no line"
			})
			if strings.Contains(logs(t, ns, pod, "python"), "/admin") {
				t.Error("a denied request reached the app")
			}
		})
	}
}

// probeCounts reads the kubelet's prober metrics (through the API server's
// node proxy) for one container, as "Liveness/successful" and the like. A
// readiness probe may fail while the app starts, with or without veneer:
// the app is not listening yet.
func probeCounts(t *testing.T, ns, pod, container string) map[string]float64 {
	t.Helper()
	node := get(t, ns, "pod/"+pod, "{.spec.nodeName}")
	m := kubectl(t, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics/probes")
	counts := map[string]float64{}
	for _, probe := range []string{"Liveness", "Readiness"} {
		for _, result := range []string{"successful", "failed", "unknown"} {
			counts[probe+"/"+result] = sum(m, "prober_probe_total", `container="`+container+`"`, `namespace="`+ns+`"`,
				`pod="`+pod+`"`, `probe_type="`+probe+`"`, `result="`+result+`"`)
		}
	}
	return counts
}

// sum adds up the samples of metric whose labels include every one of
// labels (written as in the exposition: `code="200"`), in a Prometheus text
// exposition.
func sum(exposition, metric string, labels ...string) float64 {
	var total float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			continue
		}
		have := strings.Split(rest[:end], ",")
		all := true
		for _, l := range labels {
			all = all && slices.Contains(have, l)
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+1:]), 64); all && err == nil {
			total += v
		}
	}
	return total
}
