//go:build linux

package localcluster

import (
	"os"
	"os/signal"
	"syscall"
)

// Pause is what a pod's sandbox runs, as Kubernetes' pause container: it
// holds the pod's namespaces open, reaps the orphans it inherits as PID 1,
// and exits on SIGINT or SIGTERM.
func Pause() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
