//go:build linux

package loophole

import (
	"os/exec"
	"testing"
)

// A child of this test runs as its UID in its network namespace: Scan
// finds it, and not this process.
func TestScan(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skipf("skipped: cannot start sleep: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	found := false
	for _, p := range Scan("/proc") {
		if p.PID == cmd.Process.Pid && p.Name == "sleep" {
			found = true
		}
	}
	if !found {
		t.Errorf("Scan did not find the child sleep (pid %d)", cmd.Process.Pid)
	}
}
