//go:build linux

package kubernetes

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// onceJob is a Job whose app asks the agent's /ready the moment it starts,
// prints the answer, and exits. It declares port 8080, so inject captures
// it.
const onceJob = `apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {app: once}}
    spec:
      restartPolicy: Never
      containers:
      - name: app
        image: ` + clientImage + `
        command: [sh, -c, 'echo "agent ready: $(curl -s -o /dev/null -w %{http_code} http://127.0.0.1:15000/ready)"; sleep 1']
        ports: [{containerPort: 8080}]
`

// TestJobBesideTheAgent runs a Job injected with each sidecar kind. Native:
// the kubelet starts the app only once the agent is ready, the Job
// completes, and the agent stops after the app, cleanly. Classic, as the
// README documents it: the Job's pod does not complete on its own, the
// agent runs on after the app has exited.
func TestJobBesideTheAgent(t *testing.T) {
	need(t)
	t.Run("native", func(t *testing.T) {
		ns := newNamespace(t, "job-native")
		kubectlIn(t, inject(t, onceJob, "--sidecar", "native"), "apply", "-n", ns, "-f", "-")
		kubectl(t, "wait", "-n", ns, "--for=condition=complete", "job/once", "--timeout=120s")
		pod := kubectl(t, "get", "pods", "-n", ns, "-l", "app=once", "-o", "jsonpath={.items[0].metadata.name}")

		if got := strings.TrimSpace(logs(t, ns, pod, "app")); got != "agent ready: 200" {
			t.Errorf("the app's first look at the agent: got %q; want \"agent ready: 200\" (started only once the agent was ready)", got)
		}
		if phase := get(t, ns, "pod/"+pod, "{.status.phase}"); phase != "Succeeded" {
			t.Errorf("the Job's pod: got phase %s; want Succeeded", phase)
		}
		appEnd := get(t, ns, "pod/"+pod, `{.status.containerStatuses[?(@.name=="app")].state.terminated.finishedAt}`)
		agentEnd := get(t, ns, "pod/"+pod, `{.status.initContainerStatuses[?(@.name=="veneer-agent")].state.terminated.finishedAt}`)
		agentCode := get(t, ns, "pod/"+pod, `{.status.initContainerStatuses[?(@.name=="veneer-agent")].state.terminated.exitCode}`)
		if appEnd == "" || agentEnd == "" {
			t.Fatalf("finish times: app %q, agent %q; want both terminated", appEnd, agentEnd)
		}
		if parseTime(t, agentEnd).Before(parseTime(t, appEnd)) {
			t.Errorf("the agent stopped at %s, before the app at %s; want after", agentEnd, appEnd)
		}
		if agentCode != "0" {
			t.Errorf("the agent's exit code: got %s; want 0 (a clean drain on the kubelet's SIGTERM)", agentCode)
		}
		if !strings.Contains(logs(t, ns, pod, "veneer-agent"), `"draining"`) {
			t.Error("the agent's log has no drain: it did not stop on SIGTERM")
		}
	})
	t.Run("classic", func(t *testing.T) {
		ns := newNamespace(t, "job-classic")
		kubectlIn(t, inject(t, onceJob, "--sidecar", "classic"), "apply", "-n", ns, "-f", "-")
		var pod string
		eventually(t, 2*time.Minute, "the classic Job's app exits", func() (bool, string) {
			out, _ := tryKubectl("get", "pods", "-n", ns, "-l", "app=once", "-o",
				`jsonpath={.items[0].metadata.name} {.items[0].status.containerStatuses[?(@.name=="app")].state.terminated.exitCode}`)
			f := strings.Fields(out)
			if len(f) == 2 {
				pod = f[0]
			}
			return len(f) == 2 && f[1] == "0", out
		})
		t.Logf("classic: the app's first look at the agent: %s", strings.TrimSpace(logs(t, ns, pod, "app")))
		// The agent is a regular container: nothing tells it the app is
		// done, so the pod runs on and the Job never completes.
		time.Sleep(5 * time.Second)
		if phase := get(t, ns, "pod/"+pod, "{.status.phase}"); phase != "Running" {
			t.Errorf("the classic Job's pod: got phase %s; want Running (the agent keeps it)", phase)
		}
		if running := get(t, ns, "pod/"+pod, `{.status.containerStatuses[?(@.name=="veneer-agent")].state.running.startedAt}`); running == "" {
			t.Error("the classic agent is not running after the app exited")
		}
		if done := get(t, ns, "job/once", `{.status.conditions[?(@.type=="Complete")].status}`); done == "True" {
			t.Error("the classic Job completed; the README says it does not on its own")
		}
	})
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return tm
}

// TestConfigMapEditReachesTheAgent edits the agent's ConfigMap in place:
// the kubelet swaps the mounted file's symlink, and the running agent
// reloads it, with no restart.
func TestConfigMapEditReachesTheAgent(t *testing.T) {
	need(t)
	ns := newNamespace(t, "config")
	pod, _ := deploySeed(t, ns, "native")
	clientPod(t, ns)
	url := serviceURL(t, ns, "python") + "private"
	if got := status(t, ns, url); got != "404" {
		t.Fatalf("GET /private before the edit: got %s; want the app's 404", got)
	}
	kubectl(t, "patch", "-n", ns, "configmap/veneer-config", "--type=merge", "-p", `{"data":{"config.yaml":"default:\n  protocol: auto\n  http: {requestId: true}\n  routes:\n  - prefix: /private\n    authz: {default: deny}\n"}}`)
	start := time.Now()
	eventually(t, 2*time.Minute, "GET /private is denied by the edited ConfigMap", func() (bool, string) {
		got := status(t, ns, url)
		return got == "403", "status " + got
	})
	t.Logf("the edit reached the agent in %.1fs (the kubelet's sync period here is 10s)", time.Since(start).Seconds())
	if n := get(t, ns, "pod/"+pod, `{.status.initContainerStatuses[?(@.name=="veneer-agent")].restartCount}`); n != "0" {
		t.Errorf("the agent restarted %s times; want the edit taken without a restart", n)
	}
	eventually(t, 10*time.Second, "the agent's log says it reloaded its config", func() (bool, string) {
		return strings.Contains(logs(t, ns, pod, "veneer-agent"), `"config reloaded"`), "no \"config reloaded\" line"
	})
}

// TestTerminationLetsClientsGo deletes a pod and watches it terminate. The
// kubelet runs the native agent's preStop hook (veneer-agent prestop) at
// once, while the app still runs, and from then on the agent still serves
// but closes kept connections after their response, so clients move to the
// pods that stay; the agent itself stops only after the app.
func TestTerminationLetsClientsGo(t *testing.T) {
	need(t)
	ns := newNamespace(t, "terminate")
	pod, podIP := deploySeed(t, ns, "native")
	clientPod(t, ns)
	url := fmt.Sprintf("http://%s:8080/", podIP)
	if h := curl(t, ns, "-o", "/dev/null", "-D", "-", url); strings.Contains(strings.ToLower(h), "connection: close") {
		t.Fatalf("before the pod terminates, the agent closes kept connections:\n%s", h)
	}
	kubectl(t, "delete", "pod", "-n", ns, pod, "--wait=false")
	eventually(t, 30*time.Second, "the agent's preStop hook ran", func() (bool, string) {
		return strings.Contains(logs(t, ns, pod, "veneer-agent"), "pod terminating (preStop)"), "no preStop line"
	})
	// The seed's app is PID 1 and ignores SIGTERM: it runs on until the
	// grace period ends, so it is certainly running here.
	if running := get(t, ns, "pod/"+pod, `{.status.containerStatuses[?(@.name=="python")].state.running.startedAt}`); running == "" {
		t.Error("the app had stopped before the agent's preStop hook: the hook came too late to let clients go")
	}
	h := curl(t, ns, "-o", "/dev/null", "-D", "-", url)
	if !strings.Contains(h, " 200") || !strings.Contains(strings.ToLower(h), "connection: close") {
		t.Errorf("a request to the terminating pod: want 200 with Connection: close; got\n%s", h)
	}
}
