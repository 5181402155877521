//go:build linux

package localcluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
	"golang.org/x/sys/unix"
)

// Down removes a cluster by what dir and the machine hold, whether or not
// Up finished and whether or not the process that started it is alive:
//  1. the processes whose PIDs are recorded in dir/pids, then every process
//     left in the cluster's cgroup (containerd's shims and the containers
//     they started), killed;
//  2. every mount below dir (the pods' volumes, root filesystems and network
//     namespaces), unmounted;
//  3. the node's namespaces, and with them its veths, routes and iptables
//     chains (kube-proxy's);
//  4. the cluster's cgroups, deepest first;
//  5. dir, except its logs.
//
// A dir that does not exist is fine: there is nothing of it to remove, but
// the namespaces and cgroups are still looked for.
func Down(dir string) error {
	var errs []error
	if entries, err := os.ReadDir(filepath.Join(dir, "pids")); err == nil {
		for _, e := range entries {
			data, _ := os.ReadFile(filepath.Join(dir, "pids", e.Name()))
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 && isProcess(pid, e.Name()) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := killCgroup(cgroup, 20*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := unmountBelow(dir); err != nil {
		errs = append(errs, err)
	}
	if err := localpod.Delete(podName); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroup(cgroup); err != nil {
		errs = append(errs, err)
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if e.Name() != "logs" {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// isProcess says whether pid is still the program name: a recorded PID may
// have been reused since.
func isProcess(pid int, name string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == name
}

// unmountBelow detaches every mount at or below dir, deepest first.
func unmountBelow(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (a space is \040).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
