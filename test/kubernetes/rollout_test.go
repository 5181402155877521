//go:build linux

package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"
)

// rollingApp is the seed's app as the README's rolling-update settings
// have it: two replicas, a surge before any old pod goes, a readiness
// probe, and a preStop sleep that keeps the app up while the pod leaves
// the Service's endpoints.
const rollingApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: python, labels: {app: python}}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  selector: {matchLabels: {app: python}}
  template:
    metadata: {labels: {app: python}}
    spec:
      containers:
      - name: python
        image: ` + appImage + `
        command: [python, -m, http.server, "8080"]
        workingDir: /tmp
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
        lifecycle: {preStop: {sleep: {seconds: 5}}}
---
apiVersion: v1
kind: Service
metadata: {name: python}
spec:
  selector: {app: python}
  ports: [{name: http, port: 8080, targetPort: 8080}]
`

// TestRollingUpdateUnderLoad rolls the Deployment over while clients from
// the node send requests through its Service, on kept and on new
// connections: with the README's settings, not one fails.
func TestRollingUpdateUnderLoad(t *testing.T) {
	needNode(t)
	ns := newNamespace(t, "rolling")
	kubectlIn(t, inject(t, rollingApp), "apply", "-n", ns, "-f", "-")
	kubectl(t, "rollout", "status", "-n", ns, "deployment/python", "--timeout=180s")
	url := nodeServiceURL(t, ns, "python")
	before := strings.Fields(kubectl(t, "get", "pods", "-n", ns, "-l", "app=python", "-o", "jsonpath={.items[*].metadata.name}"))

	l := startLoad(t, url, 2, 2)
	time.Sleep(2 * time.Second)
	start := time.Now()
	l.Mark()
	kubectl(t, "rollout", "restart", "-n", ns, "deployment/python")
	kubectl(t, "rollout", "status", "-n", ns, "deployment/python", "--timeout=180s")
	// The old pods are gone once their preStop and drain are over.
	eventually(t, time.Minute, "the old pods gone", func() (bool, string) {
		out, _ := tryKubectl("get", "pods", "-n", ns, "-l", "app=python", "-o", "jsonpath={.items[*].metadata.name}")
		for _, p := range before {
			if strings.Contains(out, p) {
				return false, out
			}
		}
		return true, ""
	})
	took := time.Since(start)
	time.Sleep(time.Second)
	summary := l.stop()
	t.Logf("rolling update of 2 replicas in %.1fs under load: %s", took.Seconds(), summary)
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("requests during the rolling update: %s; want none failed", summary)
	}
}

// TestAgentRestartUnderLoad kills the agent's container (SIGKILL, from the
// node's runtime) under load, from clients of the pod's address and of its
// Service. At the pod, captured connections fail closed while the agent is
// down (refused, or reset if they were open) and the kubelet's restart
// serves at once. Through the Service the pod also leaves and rejoins the
// endpoints (a restarted sidecar is unready until its startup probe
// passes), which clients see as refused connections and, as kube-proxy
// puts the endpoint back, a few that hang until their timeout. Either way
// nothing reaches the app around the agent, and nothing fails with an
// HTTP answer.
func TestAgentRestartUnderLoad(t *testing.T) {
	needNode(t)
	ns := newNamespace(t, "restart")
	pod, podIP := deploySeed(t, ns, "native")
	svcURL := nodeServiceURL(t, ns, "python")
	id := strings.TrimPrefix(get(t, ns, "pod/"+pod, `{.status.initContainerStatuses[?(@.name=="veneer-agent")].containerID}`), "containerd://")

	direct := startLoad(t, "http://"+podIP+":8080/", 1, 1)
	service := startLoad(t, svcURL, 1, 1)
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	direct.Mark()
	service.Mark()
	if _, err := k.local.Ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, time.Minute, "the kubelet restarts the agent", func() (bool, string) {
		n, _ := tryKubectl("get", "-n", ns, "pod/"+pod, "-o", `jsonpath={.status.initContainerStatuses[?(@.name=="veneer-agent")].restartCount}`)
		return n == "1", "restartCount " + n
	})
	direct.waitServing(t, time.Minute)
	t.Logf("at the pod: serving again within %.1fs of the kill: %s", time.Since(killed).Seconds(), direct.stop())
	service.waitServing(t, time.Minute)
	t.Logf("through the Service: serving again within %.1fs of the kill: %s", time.Since(killed).Seconds(), service.stop())

	for name, l := range map[string]*load{"at the pod": direct, "through the Service": service} {
		allowed := map[string]bool{"connection refused": true, "connection reset": true, "EOF": true}
		if l == service {
			allowed["timeout"] = true
		}
		for kind := range l.kinds {
			if !allowed[kind] {
				t.Errorf("%s, a failure while the agent was down: %q; want only connections refused, reset or (through the Service) timed out", name, kind)
			}
		}
		if l.ok.Load() == 0 || l.failed.Load() == 0 {
			t.Errorf("%s: %d ok, %d failed; want both: the agent was down, then up", name, l.ok.Load(), l.failed.Load())
		}
	}
	// Nothing reached the app around the agent: its every peer is the pod.
	for _, line := range strings.Split(logs(t, ns, pod, "python"), "\n") {
		if strings.Contains(line, `"GET `) && !strings.HasPrefix(line, podIP+" ") {
			t.Errorf("the app served a request not from the agent: %s", line)
			break
		}
	}
}
