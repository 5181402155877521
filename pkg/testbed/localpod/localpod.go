//go:build linux

// Package localpod reproduces a Kubernetes pod's network on one Linux machine:
// a "pod" network namespace reached from a "client" namespace over a veth
// pair, so that traffic enters the pod through PREROUTING exactly as it does
// from a node. The tests, the demo and the benchmarks all run in one.
//
//	pod, err := localpod.Create("demo") // namespaces demo-pod and demo-client
//	defer pod.Close()
//	pod.Pod.Start(exec.Command("veneer-agent"), 1337) // as UID/GID 1337, inside the pod
//	c, err := pod.Client.Dial("tcp", "10.213.0.2:8080")
//
// The namespaces are named (as `ip netns add` names them), so `ip netns exec
// demo-pod iptables -t nat -S` shows what is inside.
package localpod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The addresses of every local pod. Each pod's namespaces are isolated from
// the machine's and from each other, so these never clash with anything.
var (
	ClientIP  = netip.MustParseAddr("10.213.0.1")
	PodIP     = netip.MustParseAddr("10.213.0.2")
	ClientIP6 = netip.MustParseAddr("fd00:7665:6e::1")
	PodIP6    = netip.MustParseAddr("fd00:7665:6e::2")
)

const (
	prefix4 = 24
	prefix6 = 64
)

// Pod is a pod namespace and the client namespace wired to it.
type Pod struct {
	Name   string
	Pod    *NS // the pod: veneer-init, the agent and the app run here
	Client *NS // outside the pod: clients run here
}

// Create makes the namespaces NAME-pod and NAME-client, a veth pair between
// them, and their IPv4 and IPv6 addresses. NAME must be short (at most 8
// characters), as it also names the veth ends.
func Create(name string) (p *Pod, err error) {
	if len(name) == 0 || len(name) > 8 {
		return nil, fmt.Errorf("localpod: name %q must have 1 to 8 characters", name)
	}
	p = &Pod{Name: name}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.Pod, err = newNS(name + "-pod"); err != nil {
		return nil, err
	}
	if p.Client, err = newNS(name + "-client"); err != nil {
		return nil, err
	}
	podEnd, clientEnd := "vnr"+name+"p", "vnr"+name+"c"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: podEnd}, PeerName: clientEnd}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("localpod: creating veth %s: %w", podEnd, err)
	}
	for _, end := range []struct {
		link string
		ns   *NS
		v4   netip.Addr
		v6   netip.Addr
	}{{podEnd, p.Pod, PodIP, PodIP6}, {clientEnd, p.Client, ClientIP, ClientIP6}} {
		if err := end.ns.configure(end.link, netip.PrefixFrom(end.v4, prefix4), netip.PrefixFrom(end.v6, prefix6)); err != nil {
			netlink.LinkDel(veth)
			return nil, err
		}
	}
	return p, nil
}

// Open returns the pod that Create made under name, from another process.
func Open(name string) (*Pod, error) {
	pod, err := openNS(name + "-pod")
	if err != nil {
		return nil, err
	}
	client, err := openNS(name + "-client")
	if err != nil {
		pod.h.Close()
		return nil, err
	}
	return &Pod{Name: name, Pod: pod, Client: client}, nil
}

// Close deletes both namespaces; the veth pair goes with them. Processes
// still running inside keep their namespace alive until they exit.
func (p *Pod) Close() error {
	var errs []error
	for _, ns := range []*NS{p.Pod, p.Client} {
		if ns != nil {
			errs = append(errs, ns.delete())
		}
	}
	return errors.Join(errs...)
}

// Delete removes the namespaces of a pod by name, whether or not Create
// finished: for clean-up after a crash.
func Delete(name string) error {
	var errs []error
	for _, ns := range []string{name + "-pod", name + "-client"} {
		if err := netns.DeleteNamed(ns); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("localpod: deleting namespace %s: %w", ns, err))
		}
	}
	return errors.Join(errs...)
}

// NS is one named network namespace.
type NS struct {
	Name string
	h    netns.NsHandle
}

func newNS(name string) (*NS, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("localpod: reading this thread's namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name) // switches this thread into it
	if err != nil {
		return nil, fmt.Errorf("localpod: creating namespace %s (stale? `ip netns del %s`): %w", name, name, err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread is stuck in the new namespace: let it die with the
		// goroutine rather than run other goroutines in the wrong place.
		runtime.LockOSThread()
		return nil, fmt.Errorf("localpod: returning to the original namespace: %w", err)
	}
	return &NS{Name: name, h: h}, nil
}

func openNS(name string) (*NS, error) {
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("localpod: opening namespace %s: %w", name, err)
	}
	return &NS{Name: name, h: h}, nil
}

func (n *NS) delete() error {
	n.h.Close()
	if err := netns.DeleteNamed(n.Name); err != nil {
		return fmt.Errorf("localpod: deleting namespace %s: %w", n.Name, err)
	}
	return nil
}

// configure moves link into n, addresses it and brings it and lo up.
func (n *NS) configure(link string, v4, v6 netip.Prefix) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("localpod: finding %s: %w", link, err)
	}
	if err := netlink.LinkSetNsFd(l, int(n.h)); err != nil {
		return fmt.Errorf("localpod: moving %s into %s: %w", link, n.Name, err)
	}
	h, err := netlink.NewHandleAt(n.h)
	if err != nil {
		return fmt.Errorf("localpod: netlink in %s: %w", n.Name, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("localpod: finding lo in %s: %w", n.Name, err)
	}
	if l, err = h.LinkByName(link); err != nil {
		return fmt.Errorf("localpod: finding %s in %s: %w", link, n.Name, err)
	}
	for _, a := range []struct {
		p     netip.Prefix
		flags int
	}{{v4, 0}, {v6, unix.IFA_F_NODAD}} { // no duplicate detection: usable at once
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.p.Addr().AsSlice(), Mask: net.CIDRMask(a.p.Bits(), a.p.Addr().BitLen())}, Flags: a.flags}
		if err := h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("localpod: adding %s to %s in %s: %w", a.p, link, n.Name, err)
		}
	}
	for _, up := range []netlink.Link{lo, l} {
		if err := h.LinkSetUp(up); err != nil {
			return fmt.Errorf("localpod: bringing %s up in %s: %w", up.Attrs().Name, n.Name, err)
		}
	}
	return nil
}

// Do runs fn on a thread inside n. Sockets fn opens stay in n after it returns.
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("localpod: reading this thread's namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("localpod: entering %s: %w", n.Name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with this goroutine.
		return fmt.Errorf("localpod: leaving %s: %w", n.Name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Start starts cmd inside n, as uid and gid when id is not 0. A child
// process inherits the namespace of the thread that forks it, so cmd is
// started from a thread inside n.
func (n *NS) Start(cmd *exec.Cmd, id uint32) error {
	if id != 0 {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: id, Gid: id}
	}
	return n.Do(cmd.Start)
}

// Exec replaces this process with argv run inside n, as id/id when id is
// not 0, so that signals reach the program itself. It returns only on error.
func (n *NS) Exec(argv []string, id uint32) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return n.Do(func() error {
		// Set on every thread; execve then runs from this one, inside n.
		if id != 0 {
			if err := syscall.Setgroups(nil); err != nil {
				return fmt.Errorf("localpod: dropping groups: %w", err)
			}
			if err := syscall.Setgid(int(id)); err != nil {
				return fmt.Errorf("localpod: setgid %d: %w", id, err)
			}
			if err := syscall.Setuid(int(id)); err != nil {
				return fmt.Errorf("localpod: setuid %d: %w", id, err)
			}
		}
		return syscall.Exec(path, argv, os.Environ())
	})
}

// Run runs cmd inside n, as Start does, and waits for it.
func (n *NS) Run(cmd *exec.Cmd, id uint32) error {
	if err := n.Start(cmd, id); err != nil {
		return err
	}
	return cmd.Wait()
}

// DialContext connects from inside n; it fits http.Transport.DialContext.
// The address must be an IP literal: name resolution would run on other
// threads, outside n.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens inside n.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// Forward serves ln, in the caller's namespace, by connecting each
// connection from inside n to addr and copying both ways, as `kubectl
// port-forward` reaches a pod's port from a laptop. It returns when ln is
// closed.
func (n *NS) Forward(ln net.Listener, addr string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go n.forwardOne(c, addr)
	}
}

func (n *NS) forwardOne(c net.Conn, addr string) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	up, err := n.DialContext(ctx, "tcp", addr)
	cancel()
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() { copyHalf(up, c); close(done) }()
	copyHalf(c, up)
	<-done
}

// copyHalf copies src to dst, then half-closes dst's write side.
func copyHalf(dst, src net.Conn) {
	io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
