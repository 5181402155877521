//go:build linux

package kubernetes

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// kubectlTimeout bounds one kubectl call.
const kubectlTimeout = 2 * time.Minute

// kubectl runs kubectl and returns its output; an error fails the test.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tryKubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubectlIn is kubectl with stdin.
func kubectlIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	out, err := k.kubectl(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryKubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	return k.kubectl(ctx, "", args...)
}

var nsSeq atomic.Int32

// newNamespace makes a namespace for one test and deletes it after. On a
// failure, first its pods, containers and events are logged.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d-%d", name, os.Getpid()%10000, nsSeq.Add(1))
	kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := tryKubectl("get", "pods,jobs,events", "-n", ns, "-o", "wide")
			t.Logf("namespace %s at the failure:\n%s", ns, out)
		}
		tryKubectl("delete", "namespace", ns, "--wait=false")
	})
	return ns
}

// repo is a path in the repository.
func repo(path string) string { return filepath.Join("..", "..", path) }

// inject pipes yaml through veneerctl inject with args, as a user would
// (`veneerctl inject -f app.yaml | kubectl apply -f -`).
func inject(t *testing.T, yaml string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "veneerctl"), append([]string{"inject"}, args...)...)
	cmd.Stdin = strings.NewReader(yaml)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("veneerctl inject: %v: %s", err, stderr.String())
	}
	return string(out)
}

// eventually polls cond every 250 ms until it holds or timeout passes;
// then the test fails with what cond last said.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, detail)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// get returns a jsonpath of an object.
func get(t *testing.T, ns, object, jsonpath string) string {
	t.Helper()
	return kubectl(t, "get", "-n", ns, object, "-o", "jsonpath="+jsonpath)
}

// podOf returns the name and address of the one running pod matching
// selector (a rolled-over Deployment may briefly have two: it waits).
func podOf(t *testing.T, ns, selector string) (name, ip string) {
	t.Helper()
	eventually(t, 2*time.Minute, "one running pod "+selector, func() (bool, string) {
		out, err := tryKubectl("get", "pods", "-n", ns, "-l", selector,
			"-o", `jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name} {.status.podIP} {.metadata.deletionTimestamp}{"\n"}{end}`)
		if err != nil {
			return false, err.Error()
		}
		var live []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				live = append(live, l)
			}
		}
		if len(live) != 1 {
			return false, fmt.Sprintf("%d running pods: %q", len(live), out)
		}
		f := strings.Fields(live[0])
		name, ip = f[0], f[1]
		return true, ""
	})
	return name, ip
}

// logs is a container's output.
func logs(t *testing.T, ns, pod, container string) string {
	t.Helper()
	return kubectl(t, "logs", "-n", ns, pod, "-c", container)
}

// jsonLines returns the JSON objects among a log's lines.
func jsonLines(log string) []map[string]any {
	var out []map[string]any
	s := bufio.NewScanner(strings.NewReader(log))
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		var m map[string]any
		if json.Unmarshal(s.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// withMessage returns the lines whose message (zerolog's field) is msg.
func withMessage(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["message"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// accessLines returns the access log's lines in an agent's output.
func accessLines(log string) []map[string]any {
	var out []map[string]any
	for _, m := range jsonLines(log) {
		if _, ok := m["status"]; ok && m["path"] != nil {
			out = append(out, m)
		}
	}
	return out
}

// clientPod starts a pod with curl in ns and returns its name and address.
func clientPod(t *testing.T, ns string) (name, ip string) {
	t.Helper()
	kubectlIn(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: %s
    command: [sleep, "3600"]
`, clientImage), "apply", "-n", ns, "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/client", "--timeout=90s")
	return "client", get(t, ns, "pod/client", "{.status.podIP}")
}

// curl runs curl in the client pod and returns what it printed.
func curl(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return kubectl(t, append([]string{"exec", "-n", ns, "client", "--", "curl", "-s", "--max-time", "5"}, args...)...)
}

// status is the HTTP status of a GET from the client pod ("000": none).
func status(t *testing.T, ns, url string) string {
	t.Helper()
	out, _ := tryKubectl("exec", "-n", ns, "client", "--", "curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", url)
	return strings.TrimSpace(out)
}

// serviceURL returns the URL of port 8080 of a Service once it answers from
// the client pod: kube-proxy programs a new Service's endpoints a moment
// after they are ready (until then it rejects connections).
func serviceURL(t *testing.T, ns, name string) string {
	t.Helper()
	url := fmt.Sprintf("http://%s:8080/", get(t, ns, "service/"+name, "{.spec.clusterIP}"))
	eventually(t, 30*time.Second, "the Service "+name+" answers", func() (bool, string) {
		got := status(t, ns, url)
		return got != "000", "status " + got
	})
	return url
}
