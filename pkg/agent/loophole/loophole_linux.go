// Package loophole watches for Istio's known gap: a process in the pod that
// runs as the agent's UID. Outbound capture leaves the agent's UID alone (or
// its own connections would loop), so such a process bypasses it. The agent
// can see the pod's other processes only where they share its PID namespace
// (shareProcessNamespace: true, or a local pod); there it warns.
//
//	n := loophole.Scan("/proc") // other processes of this UID in this network namespace
package loophole

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is a process running as the agent's UID.
type Process struct {
	PID  int
	Name string
}

// Scan lists the processes under proc, other than this one, whose effective
// UID is this process's and which share its network namespace (the pod).
func Scan(proc string) []Process {
	self := os.Getpid()
	uid := strconv.Itoa(os.Geteuid())
	myNS, err := os.Readlink(filepath.Join(proc, "self/ns/net"))
	if err != nil {
		return nil
	}
	dirs, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var out []Process
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		name, euid := status(filepath.Join(proc, d.Name(), "status"))
		if euid != uid {
			continue
		}
		if ns, err := os.Readlink(filepath.Join(proc, d.Name(), "ns/net")); err != nil || ns != myNS {
			continue
		}
		out = append(out, Process{PID: pid, Name: name})
	}
	return out
}

// status reads a process's name and effective UID.
func status(path string) (name, euid string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		f := strings.Fields(v)
		switch {
		case k == "Name" && len(f) > 0:
			name = f[0]
		case k == "Uid" && len(f) > 1:
			euid = f[1]
		}
	}
	return name, euid
}
