//go:build linux

// Package kubernetes tests veneer in a real Kubernetes cluster, with the
// manifests users apply: a real kubelet starts veneer-init and the agent,
// orders the native sidecar, probes the app through the capture, runs Jobs
// beside it, rolls Deployments over and swaps ConfigMap volumes.
//
// The cluster is pkg/testbed/localcluster's (Kubernetes built from the Go module
// proxy, containerd, runc, kube-proxy in iptables mode), made and removed by
// this package, with images made by pkg/testbed/imagearchive. With
// VENEER_KUBECONFIG set, the tests run against that cluster instead (kind:
// make kind-test), and those that need the node's own network skip.
//
// make k8s-test builds what it needs and runs it (VENEER_K8S_TEST=1); under
// a plain `go test ./...` it skips and says so. VENEER_K8S_KEEP=1 leaves the
// cluster up afterwards, to look around in.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/imagearchive"
	"github.com/veneermesh/veneer/pkg/testbed/localcluster"
	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// The images the tests run, as the manifests name them.
const (
	initImage   = "veneer-init:dev"
	agentImage  = "veneer-agent:dev"
	appImage    = "python:3.12-slim"
	clientImage = "veneer-test-client:dev"
)

// k is the cluster under test; nil when the tests skip (skipWhy says why).
var (
	k       *cluster
	skipWhy string
	bin     string // veneer's binaries, the cluster's, and the base layer
)

// cluster is what the tests need of a cluster.
type cluster struct {
	kubectl func(ctx context.Context, stdin string, args ...string) (string, error)
	// node is the node's network namespace: connections from there reach
	// ClusterIPs and pods as the kubelet's do. nil on a cluster not made here.
	node *localpod.NS
	// local is the cluster made here; nil otherwise.
	local *localcluster.Cluster
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	if os.Getenv("VENEER_K8S_TEST") == "" {
		skipWhy = "run by make k8s-test, which builds the cluster's binaries and the images first (VENEER_K8S_TEST=1)"
		return m.Run()
	}
	bin = os.Getenv("VENEER_BIN")
	if bin == "" {
		bin = "../../bin"
	}
	var err error
	if bin, err = filepath.Abs(bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	archive := filepath.Join(os.TempDir(), "veneer-k8s-images.tar")
	defer os.Remove(archive)
	if kc := os.Getenv("VENEER_KUBECONFIG"); kc != "" {
		k, err = existing(ctx, kc, archive)
	} else {
		if why := localcluster.Check(bin); why != nil {
			skipWhy = why.Error()
			return m.Run()
		}
		var down func() error
		k, down, err = local(ctx, archive)
		if down != nil {
			defer func() {
				if err := down(); err != nil && code == 0 {
					fmt.Fprintf(os.Stderr, "kubernetes tests: the cluster was not removed whole: %v\n", err)
					code = 1
				}
			}()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubernetes tests: %v\n", err)
		return 1
	}
	return m.Run()
}

// local brings a cluster up with pkg/testbed/localcluster and imports the images.
func local(ctx context.Context, archive string) (*cluster, func() error, error) {
	// A fixed folder: a crashed run's cluster is removed by the next, and
	// make k8s-test removes it after the tests whatever became of them.
	dir := os.Getenv("VENEER_K8S_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "veneer-k8s")
	}
	start := time.Now()
	c, err := localcluster.Up(ctx, localcluster.Options{Dir: dir, Bin: bin, Pause: filepath.Join(bin, "localcluster"), Progress: os.Stderr})
	if err != nil {
		return nil, nil, err
	}
	// down removes the cluster; what it leaves behind (a process, a mount,
	// a cgroup in any hierarchy) fails the run.
	down := func() error {
		if os.Getenv("VENEER_K8S_KEEP") != "" {
			fmt.Fprintf(os.Stderr, "kubernetes tests: VENEER_K8S_KEEP: the cluster stays up; bin/localcluster kubectl %s %s -- get pods -A; bin/localcluster down %s\n", dir, bin, dir)
			return nil
		}
		err := c.Down()
		fmt.Fprintf(os.Stderr, "kubernetes tests: the cluster's logs are in %s/logs\n", dir)
		if left := localcluster.Left(); len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("cgroups left: %v", left))
		}
		return err
	}
	t := time.Now()
	if err := writeImages(archive); err != nil {
		return nil, down, err
	}
	if err := c.Import(ctx, archive); err != nil {
		return nil, down, err
	}
	fmt.Fprintf(os.Stderr, "kubernetes tests: images made and imported (%.1fs); cluster ready in %.1fs\n",
		time.Since(t).Seconds(), time.Since(start).Seconds())
	kubectl := func(ctx context.Context, stdin string, args ...string) (string, error) {
		return c.Kubectl(ctx, strings.NewReader(stdin), args...)
	}
	return &cluster{kubectl: kubectl, node: c.Node, local: c}, down, nil
}

// existing uses the cluster of kubeconfig (kind's), loading the images
// into it with `kind load image-archive` when VENEER_KIND_CLUSTER names it.
func existing(ctx context.Context, kubeconfig, archive string) (*cluster, error) {
	kubectl := func(ctx context.Context, stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return string(out), nil
	}
	if name := os.Getenv("VENEER_KIND_CLUSTER"); name != "" {
		if err := writeImages(archive); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, "kind", "load", "image-archive", "--name", name, archive).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("kind load image-archive: %w: %s", err, out)
		}
	}
	return &cluster{kubectl: kubectl}, nil
}

// writeImages writes the tests' images into one archive. The Debian layer
// (bin/debian-base.tar: debootstrap's minbase with iptables, python3 and
// curl, from make) stands in for the bases no registry can give here; on
// top of it each image is what its Dockerfile (or Docker Hub) makes.
func writeImages(archive string) error {
	base := filepath.Join(bin, "debian-base.tar")
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	err = imagearchive.Write(f, append(imagearchive.Veneer(bin, base), // veneer-init:dev, veneer-agent:dev
		imagearchive.Image{ // the seed's app: Debian's python3 as `python`
			Ref: appImage, Layers: []string{base},
			Files: []imagearchive.File{{Path: "usr/local/bin/python", Link: "/usr/bin/python3"}},
			Cmd:   []string{"python3"},
		},
		imagearchive.Image{Ref: clientImage, Layers: []string{base}, Cmd: []string{"bash"}}, // curl
	)...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("making the images: %w", err)
	}
	return nil
}

// need skips the test when there is no cluster, saying why. Under CI a
// missing requirement fails instead, as in test/integration; the gate of
// make k8s-test is not one (make test runs make k8s-test right after).
func need(t *testing.T) {
	t.Helper()
	if k != nil {
		return
	}
	if os.Getenv("CI") != "" && os.Getenv("VENEER_K8S_TEST") != "" {
		t.Fatalf("requirement missing in CI: %s", skipWhy)
	}
	t.Skipf("skipped: %s", skipWhy)
}

// needNode skips a test that needs the node's own network (a cluster
// made here), saying why.
func needNode(t *testing.T) {
	t.Helper()
	need(t)
	if k.node == nil {
		t.Skip("skipped: needs the node's network namespace (the cluster made by pkg/testbed/localcluster, not VENEER_KUBECONFIG's)")
	}
}
