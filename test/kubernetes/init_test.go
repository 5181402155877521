//go:build linux

package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// debug runs command in an ephemeral container of pod with the veneer-init
// image and kubectl debug's netadmin profile (NET_ADMIN and NET_RAW, in the
// pod's network namespace), as a user looking into a pod would, and returns
// its output once it has exited.
func debug(t *testing.T, ns, pod, name string, command ...string) string {
	t.Helper()
	kubectl(t, append([]string{"debug", "-n", ns, pod, "--image=" + initImage, "--profile=netadmin", "--container=" + name, "--"}, command...)...)
	eventually(t, time.Minute, "the ephemeral container "+name+" exits", func() (bool, string) {
		code, err := tryKubectl("get", "-n", ns, "pod/"+pod, "-o",
			`jsonpath={.status.ephemeralContainerStatuses[?(@.name=="`+name+`")].state.terminated.exitCode}`)
		return err == nil && code != "", code
	})
	out := logs(t, ns, pod, name)
	if code := get(t, ns, "pod/"+pod, `{.status.ephemeralContainerStatuses[?(@.name=="`+name+`")].state.terminated.exitCode}`); code != "0" {
		t.Fatalf("%s in an ephemeral container exited %s:\n%s", strings.Join(command, " "), code, out)
	}
	return out
}

// initLog returns the JSON lines of the pod's veneer-init whose message is
// msg.
func initLog(t *testing.T, ns, pod, msg string) []map[string]any {
	t.Helper()
	return withMessage(jsonLines(logs(t, ns, pod, "veneer-init")), msg)
}

// TestInitInThePod looks at what veneer-init did in a running pod: the
// table the pod's own iptables-save shows (veneer's chains only, each rule
// commented), the backend it picked against the node's, a re-run of the
// init container over its own rules (a no-op), and a pod sandbox restart,
// after which the kubelet runs the init containers again in the new
// sandbox and the pod serves through the agent again.
func TestInitInThePod(t *testing.T) {
	need(t)
	ns := newNamespace(t, "init")
	pod, _ := deploySeed(t, ns, "native")

	// kubectl exec cannot: the app's container has no NET_ADMIN (nor
	// iptables, in a real python image). An ephemeral container can.
	detected := initLog(t, ns, pod, "iptables backend detected")
	if len(detected) == 0 {
		t.Fatal("veneer-init's log does not say which iptables backend it picked")
	}
	backend := fmt.Sprint(detected[0]["backend"])
	saveCmd := map[string]string{"nft": "iptables-nft-save", "legacy": "iptables-legacy-save"}
	save := saveCmd[backend]
	if save == "" {
		t.Fatalf("veneer-init logged backend %q; want nft or legacy", backend)
	}
	checkOnlyVeneer(t, debug(t, ns, pod, "save", save))

	// The node's backend is the one whose tables hold kube-proxy's chains.
	if k.node != nil {
		var node []string
		for b, cmd := range saveCmd {
			var out strings.Builder
			c := exec.Command(cmd, "-t", "nat")
			c.Stdout = &out
			if err := k.node.Run(c, 0); err == nil && strings.Contains(out.String(), ":KUBE-SERVICES") {
				node = append(node, b)
			}
		}
		if len(node) != 1 || node[0] != backend {
			t.Errorf("veneer-init picked %s; the node's kube-proxy chains are in %v", backend, node)
		}
	}

	// The init container again, as the kubelet would run it, in the same
	// pod network: it finds its rules and changes nothing.
	var args []string
	if err := json.Unmarshal([]byte(get(t, ns, "pod/"+pod, `{.spec.initContainers[?(@.name=="veneer-init")].args}`)), &args); err != nil {
		t.Fatalf("veneer-init's args: %v", err)
	}
	rerun := jsonLines(debug(t, ns, pod, "rerun", append([]string{"/usr/local/bin/veneer-init"}, args...)...))
	if len(withMessage(rerun, "rules already in place; nothing changed")) == 0 || len(withMessage(rerun, "rules applied")) > 0 {
		t.Errorf("veneer-init re-run over its own rules: want \"rules already in place; nothing changed\" and nothing applied; got %v", rerun)
	}

	// A sandbox restart: the pause container killed, as a node's runtime
	// restart would. The kubelet makes a new sandbox (a new network
	// namespace) and runs the init containers again.
	needNode(t)
	uid := get(t, ns, "pod/"+pod, "{.metadata.uid}")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sandbox, err := k.local.Ctr(ctx, "containers", "ls", "-q", `labels."io.kubernetes.pod.uid"==`+uid+`,labels."io.cri-containerd.kind"==sandbox`)
	if err != nil || strings.TrimSpace(sandbox) == "" {
		t.Fatalf("finding the pod's sandbox: %v %q", err, sandbox)
	}
	if _, err := k.local.Ctr(ctx, "tasks", "kill", "-s", "SIGKILL", strings.TrimSpace(sandbox)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the pod Ready again in a new sandbox", func() (bool, string) {
		out, _ := tryKubectl("get", "-n", ns, "pod/"+pod, "-o",
			`jsonpath={.status.containerStatuses[?(@.name=="python")].restartCount} {.status.conditions[?(@.type=="Ready")].status}`)
		f := strings.Fields(out)
		return len(f) == 2 && f[0] != "0" && f[1] == "True", out
	})
	// The new sandbox's table was empty: veneer-init applied its rules
	// once, and the pod serves through the agent again.
	if applied := initLog(t, ns, pod, "rules applied"); len(applied) != 1 {
		t.Errorf("veneer-init after the sandbox restart: %d \"rules applied\" lines; want 1", len(applied))
	}
	checkOnlyVeneer(t, debug(t, ns, pod, "save2", save))
	clientPod(t, ns)
	url := serviceURL(t, ns, "python")
	if got := status(t, ns, url); got != "200" {
		t.Errorf("the Service through the new sandbox's agent: got %s; want 200", got)
	}
}

// checkOnlyVeneer checks an iptables-save of a pod: every chain is a
// built-in one or veneer's, every rule is in or jumps into a VENEER_ chain,
// and each carries a comment.
func checkOnlyVeneer(t *testing.T, save string) {
	t.Helper()
	builtin := map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}
	rules := 0
	seen := map[string]bool{}
	for _, line := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			chain := strings.Fields(line[1:])[0]
			if !builtin[chain] && !strings.HasPrefix(chain, "VENEER_") {
				t.Errorf("iptables-save in the pod shows a chain not veneer's: %s", line)
			}
		case strings.HasPrefix(line, "-A "):
			rules++
			f := strings.Fields(line)
			if !strings.HasPrefix(f[1], "VENEER_") && !strings.Contains(line, "-j VENEER_") {
				t.Errorf("iptables-save in the pod shows a rule not veneer's: %s", line)
			}
			if !strings.Contains(line, "--comment") {
				t.Errorf("a rule without a comment: %s", line)
			}
			if seen[line] {
				t.Errorf("a rule twice: %s", line)
			}
			seen[line] = true
		}
	}
	if rules == 0 {
		t.Errorf("iptables-save in the pod shows no rule:\n%s", save)
	}
}
