//go:build linux

package localcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupFS is where cgroup v1's hierarchies are mounted, one folder each.
const cgroupFS = "/sys/fs/cgroup"

// hierarchies lists the cgroup v1 hierarchies the kubelet uses: every
// folder of cgroupFS but the unified (v2) one a hybrid machine has.
func hierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", cgroupFS, err)
	}
	var hs []string
	for _, e := range entries {
		p := filepath.Join(cgroupFS, e.Name())
		if !e.IsDir() || e.Name() == "unified" {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			hs = append(hs, p)
		}
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no cgroup v1 hierarchy under %s: the kubelet here is set up for cgroup v1 (cgroupDriver cgroupfs)", cgroupFS)
	}
	return hs, nil
}

// leftIn lists every hierarchy a cluster's cgroups can be left in: the v1
// ones, and the unified (v2) one of a hybrid machine, where containerd and
// runc make a cgroup for each container too (Down left 69 there, run after
// run, while it looked in the v1 ones only).
func leftIn() []string {
	hs, _ := hierarchies()
	unified := filepath.Join(cgroupFS, "unified")
	if _, err := os.Stat(filepath.Join(unified, "cgroup.procs")); err == nil {
		hs = append(hs, unified)
	}
	return hs
}

// Left lists the cluster's cgroups still on the machine, in any hierarchy:
// none after Down.
func Left() []string {
	var left []string
	for _, h := range leftIn() {
		if _, err := os.Stat(filepath.Join(h, cgroup)); err == nil {
			left = append(left, filepath.Join(h, cgroup))
		}
	}
	return left
}

// makeCgroup makes the cgroup name (a path such as "veneer-k8s/node") in
// every hierarchy. A new cpuset takes its parent's CPUs and memory nodes:
// it can hold no process before it has some.
func makeCgroup(name string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := h
		for _, part := range strings.Split(name, "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("making cgroup %s: %w", dir, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if v, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
					if cur, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(cur)) == "" {
						if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
							return fmt.Errorf("setting %s of %s: %w", f, dir, err)
						}
					}
				}
			}
		}
	}
	return nil
}

// joinCgroup moves pid into cgroup name in every hierarchy.
func joinCgroup(name string, pid int) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if err := os.WriteFile(filepath.Join(h, name, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("moving %d into %s: %w", pid, filepath.Join(h, name), err)
		}
	}
	return nil
}

// cgroupPIDs lists every process in cgroup name and below, in any hierarchy.
func cgroupPIDs(name string) []int {
	hs := leftIn()
	seen := map[int]bool{}
	var pids []int
	for _, h := range hs {
		filepath.WalkDir(filepath.Join(h, name), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// killCgroup kills every process in cgroup name and below until none is
// left (processes fork while they are being killed), for up to timeout.
func killCgroup(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := cgroupPIDs(name)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of cgroup %s still alive after %s", pids, name, timeout)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeCgroup removes cgroup name and every cgroup below it, deepest
// first, in every hierarchy. Its processes must be gone.
func removeCgroup(name string) error {
	var errs []error
	for _, h := range leftIn() {
		var dirs []string
		filepath.WalkDir(filepath.Join(h, name), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			// A cgroup whose last process just died may be busy a moment.
			var err error
			for try := 0; try < 50; try++ {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
