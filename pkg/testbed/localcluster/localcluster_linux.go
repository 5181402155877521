//go:build linux

// Package localcluster runs a real single-node Kubernetes cluster on one
// Linux machine from upstream parts, as Kubernetes' own
// hack/local-up-cluster.sh does: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, a kubelet on containerd and runc
// with the CNI plugins, and kube-proxy in iptables mode. No registry is
// needed: images are imported from archives (pkg/testbed/imagearchive), the pods'
// sandboxes included.
//
// The node is the pod namespace of a local pod (pkg/testbed/localpod) named "vk8s":
// its iptables, routes and the pods' veths stay out of the machine's, and
// the local pod's client namespace is "outside the node". Everything else
// is in one folder and one cgroup, which Down removes by what it finds
// there: processes, mounts, namespaces and cgroups, also after a crash.
//
//	c, err := localcluster.Up(ctx, localcluster.Options{Dir: "/tmp/vk8s", Bin: "bin", Pause: "bin/localcluster"})
//	defer c.Down()
//	err = c.Import(ctx, "images.tar")
//	out, err := c.Kubectl(ctx, nil, "get", "nodes")
package localcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/veneermesh/veneer/pkg/testbed/imagearchive"
	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// The cluster's names and addresses. The node's address is the local pod's
// (localpod.PodIP); pods and Services get theirs from these ranges, which
// exist only inside the node's namespace.
const (
	NodeName    = "veneer-node"
	PodCIDR     = "10.214.0.0/24"
	ServiceCIDR = "10.215.0.0/24"
	// PauseImage is the image of every pod's sandbox.
	PauseImage = "localhost/veneer-pause:dev"

	podName = "vk8s"       // the local pod: namespaces vk8s-pod (the node) and vk8s-client
	cgroup  = "veneer-k8s" // every process of the cluster is in it or below
)

// Options says where the cluster lives and what it runs.
type Options struct {
	// Dir is the cluster's folder: certificates, configuration, data,
	// logs (Dir/logs) and the PIDs it started (Dir/pids). Keep it short:
	// unix sockets are made below it.
	Dir string
	// Bin holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubelet, kube-proxy and kubectl.
	Bin string
	// Pause is a static program that runs Pause when called with the
	// argument "pause" (cmd/localcluster is one): the pods' sandbox.
	Pause string
	// Progress gets a line per step; nil: none.
	Progress io.Writer
}

// Cluster is a running cluster.
type Cluster struct {
	Dir        string
	Kubeconfig string       // cluster-admin's
	Node       *localpod.NS // the node's network namespace
	bin        string
	progress   io.Writer
	exited     map[string]chan struct{}
}

// tools are the programs of the machine the cluster needs, each with the
// Debian package that has it.
var tools = [][2]string{
	{"containerd", "containerd"}, {"ctr", "containerd"}, {"runc", "runc"},
	{"iptables", "iptables"}, {"conntrack", "conntrack"},
}

// CNIBin is where Debian's containernetworking-plugins puts the plugins.
const CNIBin = "/usr/lib/cni"

// binaries are the cluster's own programs, in Options.Bin.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}

// Check says what Up would miss on this machine, or nil.
func Check(bin string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, cgroups, mounts)")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t[0]); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t[0], t[1]))
		}
	}
	for _, p := range []string{"ptp", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(CNIBin, p)); err != nil {
			missing = append(missing, fmt.Sprintf("the CNI plugin %s in %s (apt-get install containernetworking-plugins)", p, CNIBin))
		}
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			missing = append(missing, fmt.Sprintf("%s in %s (make k8s-binaries)", b, bin))
		}
	}
	if _, err := hierarchies(); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return fmt.Errorf("a local cluster needs: %s", strings.Join(missing, "; "))
	}
	return nil
}

// Up starts a cluster and returns once its node is Ready and the default
// ServiceAccount exists. What a previous cluster left in o.Dir is removed
// first. On error, whatever it started is removed too.
func Up(ctx context.Context, o Options) (c *Cluster, err error) {
	if err := Check(o.Bin); err != nil {
		return nil, err
	}
	if o.Pause == "" {
		return nil, errors.New("localcluster: Options.Pause: no pause program")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return nil, err
	}
	if err := Down(dir); err != nil {
		return nil, fmt.Errorf("removing the previous cluster: %w", err)
	}
	c = &Cluster{Dir: dir, bin: bin, progress: o.Progress, exited: map[string]chan struct{}{}}
	if c.progress == nil {
		c.progress = io.Discard
	}
	defer func() {
		if err != nil {
			c.Down()
			c = nil
		}
	}()
	start := time.Now()
	step := func(name string, fn func() error) {
		if err != nil {
			return
		}
		t := time.Now()
		if err = fn(); err != nil {
			err = fmt.Errorf("%s: %w", name, err)
			return
		}
		fmt.Fprintf(c.progress, "localcluster: %s (%.1fs)\n", name, time.Since(t).Seconds())
	}
	l := layout{Dir: dir, PKI: filepath.Join(dir, "pki"), CNIBin: CNIBin, PauseImage: PauseImage,
		NodeName: NodeName, NodeIP: localpod.PodIP.String(), PodCIDR: PodCIDR, Cgroup: cgroup}
	step("folders, cgroups and the node's namespace", func() error { return c.prepare() })
	step("certificates and configuration", func() error { return c.configure(l) })
	step("containerd", func() error { return c.startContainerd(ctx, o.Pause) })
	step("etcd", func() error { return c.startEtcd(ctx) })
	step("kube-apiserver", func() error { return c.startAPIServer(ctx, l) })
	step("controller-manager, scheduler, kubelet, kube-proxy", func() error { return c.startNode(ctx, l) })
	step("node Ready, default ServiceAccount", func() error { return c.waitReady(ctx) })
	if err == nil {
		fmt.Fprintf(c.progress, "localcluster: up in %.1fs; kubectl --kubeconfig %s (from the namespace %s-pod)\n",
			time.Since(start).Seconds(), c.Kubeconfig, podName)
	}
	return c, err
}

// prepare makes the folders, the cgroup and the node's network namespace.
func (c *Cluster) prepare() error {
	for _, d := range []string{"pki", "logs", "pids", "cni", "etcd", "pod-logs", "kubelet", "containerd"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := makeCgroup(cgroup + "/node"); err != nil {
		return err
	}
	p, err := localpod.Create(podName)
	if err != nil {
		return err
	}
	c.Node = p.Pod
	return c.Node.Do(func() error {
		// The node routes between pods (the ptp plugin's veths).
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return err
		}
		// A default route, as every node has: the kernel routes a
		// connection to a ClusterIP before kube-proxy's DNAT rewrites it,
		// and with no route it fails at once (network unreachable).
		return netlink.RouteAdd(&netlink.Route{Gw: net.IP(localpod.ClientIP.AsSlice())})
	})
}

// configure issues the certificates and writes every configuration file.
func (c *Cluster) configure(l layout) error {
	p, err := newPKI(l.PKI)
	if err != nil {
		return err
	}
	nodeIP := net.IP(localpod.PodIP.AsSlice())
	kubernetesIP := net.IPv4(10, 215, 0, 1) // the first address of ServiceCIDR: the kubernetes Service
	certs := []cert{
		{name: "apiserver", cn: "kube-apiserver", server: true, ips: []net.IP{nodeIP, kubernetesIP, net.IPv4(127, 0, 0, 1)},
			dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
		{name: "admin", cn: "cluster-admin", orgs: []string{"system:masters"}},
		{name: "controller-manager", cn: "system:kube-controller-manager"},
		{name: "scheduler", cn: "system:kube-scheduler"},
		{name: "kube-proxy", cn: "system:kube-proxy"},
		{name: "kubelet", cn: "system:node:" + NodeName, orgs: []string{"system:nodes"}},
		{name: "kubelet-serving", cn: NodeName, server: true, ips: []net.IP{nodeIP}, dns: []string{NodeName}},
	}
	for _, ct := range certs {
		if err := p.issue(ct); err != nil {
			return err
		}
	}
	if err := p.keyPair("service-account"); err != nil {
		return err
	}
	for _, user := range []string{"admin", "controller-manager", "scheduler", "kube-proxy", "kubelet"} {
		if _, err := l.kubeconfig(user); err != nil {
			return err
		}
	}
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	for name, path := range map[string]string{
		"containerd.toml": "containerd.toml", "cni.conflist": "cni/10-veneer-local.conflist",
		"kubelet.yaml": "kubelet.yaml", "kube-proxy.yaml": "kube-proxy.yaml",
	} {
		if err := l.render(name, filepath.Join(c.Dir, path)); err != nil {
			return err
		}
	}
	return nil
}

// start starts a component inside the node's namespace and the cluster's
// cgroup, its output in Dir/logs/NAME.log and its PID in Dir/pids/NAME.
func (c *Cluster) start(name, path string, args ...string) error {
	logf, err := os.Create(filepath.Join(c.Dir, "logs", name+".log")) // a previous cluster's, which Down kept, goes
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Node.Start(cmd, 0); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	logf.Close()
	done := make(chan struct{})
	c.exited[name] = done
	go func() { cmd.Wait(); close(done) }()
	if err := os.WriteFile(filepath.Join(c.Dir, "pids", name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return joinCgroup(cgroup+"/node", cmd.Process.Pid)
}

// waitFor polls ok every 200 ms until it returns true, the component name
// exits, or timeout passes; either failure quotes the end of its log.
func (c *Cluster) waitFor(ctx context.Context, name string, timeout time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		select {
		case <-c.exited[name]:
			return fmt.Errorf("%s exited: %s", name, c.logTail(name))
		case <-ctx.Done():
			return fmt.Errorf("%s not up after %s: %s", name, timeout, c.logTail(name))
		case <-tick.C:
		}
	}
	return nil
}

// logTail is the last lines of a component's log, for an error.
func (c *Cluster) logTail(name string) string {
	data, _ := os.ReadFile(filepath.Join(c.Dir, "logs", name+".log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return fmt.Sprintf("the end of %s:\n%s", filepath.Join(c.Dir, "logs", name+".log"), strings.Join(lines, "\n"))
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) startContainerd(ctx context.Context, pause string) error {
	containerd, _ := exec.LookPath("containerd")
	if err := c.start("containerd", containerd, "--config", c.path("containerd.toml")); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd", 30*time.Second, func() bool {
		return exec.CommandContext(ctx, "ctr", "--address", c.path("containerd.sock"), "version").Run() == nil
	}); err != nil {
		return err
	}
	archive := c.path("pause.tar")
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	err = imagearchive.Write(f, imagearchive.Image{
		Ref:        PauseImage,
		Files:      []imagearchive.File{{Path: "pause", Src: pause, Mode: 0o755}},
		Entrypoint: []string{"/pause", "pause"},
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("making the pause image: %w", err)
	}
	return c.Import(ctx, archive)
}

// Import imports the images of an archive (pkg/testbed/imagearchive, or docker
// save's) into the node's containerd, where the kubelet finds them.
func (c *Cluster) Import(ctx context.Context, archive string) error {
	_, err := c.Ctr(ctx, "images", "import", archive)
	return err
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	if err := c.start("etcd", filepath.Join(c.bin, "etcd"),
		"--name", "node", "--data-dir", c.path("etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "node=http://127.0.0.1:2380",
		// A cluster that lives for one test run: no fsync, quiet logs.
		"--unsafe-no-fsync", "--log-level", "warn"); err != nil {
		return err
	}
	client := c.nodeHTTP(nil)
	return c.waitFor(ctx, "etcd", 30*time.Second, func() bool { return get(ctx, client, "http://127.0.0.1:2379/health") })
}

func (c *Cluster) startAPIServer(ctx context.Context, l layout) error {
	pki := func(name string) string { return filepath.Join(l.PKI, name) }
	if err := c.start("kube-apiserver", filepath.Join(c.bin, "kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379",
		"--advertise-address", l.NodeIP, "--bind-address", "0.0.0.0", "--secure-port", "6443",
		"--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
		"--client-ca-file", pki("ca.crt"),
		"--kubelet-client-certificate", pki("apiserver-kubelet-client.crt"), "--kubelet-client-key", pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", pki("ca.crt"),
		// The node's host name may resolve to 127.0.0.1 here: use its address.
		"--kubelet-preferred-address-types", "InternalIP,Hostname",
		"--service-account-key-file", pki("service-account.pub"),
		"--service-account-signing-key-file", pki("service-account.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true", "--profiling=false"); err != nil {
		return err
	}
	admin, err := c.adminTLS(l)
	if err != nil {
		return err
	}
	client := c.nodeHTTP(admin)
	url := "https://" + l.NodeIP + ":6443/readyz"
	return c.waitFor(ctx, "kube-apiserver", 90*time.Second, func() bool { return get(ctx, client, url) })
}

func (c *Cluster) startNode(ctx context.Context, l layout) error {
	pki := func(name string) string { return filepath.Join(l.PKI, name) }
	for _, comp := range []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			"--kubeconfig", c.path("controller-manager.kubeconfig"),
			"--authentication-kubeconfig", c.path("controller-manager.kubeconfig"),
			"--authorization-kubeconfig", c.path("controller-manager.kubeconfig"),
			"--service-account-private-key-file", pki("service-account.key"),
			"--root-ca-file", pki("ca.crt"),
			"--cluster-signing-cert-file", pki("ca.crt"), "--cluster-signing-key-file", pki("ca.key"),
			"--use-service-account-credentials=true", "--leader-elect=false",
			"--bind-address", "127.0.0.1", "--profiling=false"}},
		{"kube-scheduler", []string{
			"--kubeconfig", c.path("scheduler.kubeconfig"),
			"--authentication-kubeconfig", c.path("scheduler.kubeconfig"),
			"--authorization-kubeconfig", c.path("scheduler.kubeconfig"),
			"--leader-elect=false", "--bind-address", "127.0.0.1", "--profiling=false"}},
		{"kubelet", []string{
			"--config", c.path("kubelet.yaml"),
			"--kubeconfig", c.path("kubelet.kubeconfig"),
			"--root-dir", c.path("kubelet"),
			"--hostname-override", NodeName, "--node-ip", l.NodeIP}},
		{"kube-proxy", []string{"--config", c.path("kube-proxy.yaml")}},
	} {
		if err := c.start(comp.name, filepath.Join(c.bin, comp.name), comp.args...); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits for the node to be Ready, kube-proxy to have programmed
// the kubernetes Service, and the default ServiceAccount.
func (c *Cluster) waitReady(ctx context.Context) error {
	checks := []struct {
		component string
		args      []string
		want      string
	}{
		{"kubelet", []string{"get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`}, "True"},
		{"kube-controller-manager", []string{"get", "serviceaccount", "default", "-o", "name"}, "serviceaccount/default"},
	}
	for _, ch := range checks {
		if err := c.waitFor(ctx, ch.component, 90*time.Second, func() bool {
			out, err := c.Kubectl(ctx, nil, ch.args...)
			return err == nil && strings.TrimSpace(out) == ch.want
		}); err != nil {
			return err
		}
	}
	return c.waitFor(ctx, "kube-proxy", 60*time.Second, func() bool {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "iptables", "-t", "nat", "-S", "KUBE-SERVICES")
		cmd.Stdout = &out
		return c.Node.Run(cmd, 0) == nil && strings.Contains(out.String(), "default/kubernetes")
	})
}

// Kubectl runs kubectl as cluster-admin from inside the node's namespace,
// with stdin (nil: none), and returns its standard output; an error carries
// its standard error.
func (c *Cluster) Kubectl(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := c.Node.Run(cmd, 0); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Ctr runs containerd's ctr against the node's containerd, in the
// namespace the kubelet's containers are in: what an operator on the node
// would do with crictl.
func (c *Cluster) Ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.path("containerd.sock"), "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// adminTLS is cluster-admin's TLS configuration, for Go clients.
func (c *Cluster) adminTLS(l layout) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(l.PKI, "admin.crt"), filepath.Join(l.PKI, "admin.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(l.PKI, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}

// nodeHTTP is an HTTP client whose connections start inside the node.
func (c *Cluster) nodeHTTP(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: c.Node.DialContext, TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func get(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Down stops the cluster and removes it: see the package Down.
func (c *Cluster) Down() error {
	return Down(c.Dir)
}
