//go:build linux

package localcluster

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The certificates the components present verify against the CA for what
// each does: the API server serves its names, a user's groups are its
// organizations.
func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p, err := newPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.issue(cert{name: "server", cn: "kube-apiserver", server: true, ips: []net.IP{net.IPv4(10, 215, 0, 1)}, dns: []string{"kubernetes.default"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.issue(cert{name: "node", cn: "system:node:n", orgs: []string{"system:nodes"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.keyPair("sa"); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(dir, "ca.crt")))

	server := readCert(t, filepath.Join(dir, "server.crt"))
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "kubernetes.default", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the server certificate for kubernetes.default: %v", err)
	}
	if err := server.VerifyHostname("10.215.0.1"); err != nil {
		t.Errorf("the server certificate for its Service address: %v", err)
	}
	node := readCert(t, filepath.Join(dir, "node.crt"))
	if _, err := node.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the client certificate: %v", err)
	}
	if node.Subject.CommonName != "system:node:n" || len(node.Subject.Organization) != 1 || node.Subject.Organization[0] != "system:nodes" {
		t.Errorf("the client's user and groups: got %q %v", node.Subject.CommonName, node.Subject.Organization)
	}
	if server.SerialNumber.Cmp(node.SerialNumber) == 0 {
		t.Error("two certificates with one serial number")
	}
	for _, f := range []string{"ca.key", "server.key", "sa.key", "sa.pub"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
}

// Every configuration file renders and parses, with the settings this
// machine needs in place.
func TestConfigs(t *testing.T) {
	dir := t.TempDir()
	l := layout{Dir: dir, PKI: dir + "/pki", CNIBin: CNIBin, PauseImage: PauseImage,
		NodeName: NodeName, NodeIP: "10.213.0.2", PodCIDR: PodCIDR, Cgroup: cgroup}
	for _, name := range []string{"containerd.toml", "cni.conflist", "kubelet.yaml", "kube-proxy.yaml"} {
		if err := l.render(name, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := l.kubeconfig("admin")
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	yamlOf := func(name string) map[string]any {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(read(name)), &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	kubelet := yamlOf(filepath.Join(dir, "kubelet.yaml"))
	for key, want := range map[string]any{"failCgroupV1": false, "cgroupDriver": "cgroupfs", "cgroupRoot": "/" + cgroup, "failSwapOn": false} {
		if kubelet[key] != want {
			t.Errorf("kubelet.yaml %s: got %v; want %v", key, kubelet[key], want)
		}
	}
	if proxy := yamlOf(filepath.Join(dir, "kube-proxy.yaml")); proxy["mode"] != "iptables" || proxy["clusterCIDR"] != PodCIDR {
		t.Errorf("kube-proxy.yaml: mode %v, clusterCIDR %v", proxy["mode"], proxy["clusterCIDR"])
	}
	if admin := yamlOf(kc); admin["current-context"] != "local" || !strings.Contains(read(kc), "https://10.213.0.2:6443") {
		t.Errorf("admin.kubeconfig:\n%s", read(kc))
	}
	var cni struct {
		Plugins []struct {
			Type string
			IPAM struct{ Ranges [][]struct{ Subnet string } }
		}
	}
	if err := json.Unmarshal([]byte(read(filepath.Join(dir, "cni.conflist"))), &cni); err != nil {
		t.Fatalf("cni.conflist: %v", err)
	}
	if cni.Plugins[0].Type != "ptp" || cni.Plugins[0].IPAM.Ranges[0][0].Subnet != PodCIDR {
		t.Errorf("cni.conflist: %+v", cni)
	}
	toml := read(filepath.Join(dir, "containerd.toml"))
	for _, want := range []string{"restrict_oom_score_adj = true", `sandbox_image = "` + PauseImage + `"`, "SystemdCgroup = false", "netns_mounts_under_state_dir = true", `address = "` + dir + `/containerd.sock"`} {
		if !strings.Contains(toml, want) {
			t.Errorf("containerd.toml lacks %q", want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:             "/tmp/a",
		`/tmp/with\040space`: "/tmp/with space",
		`/tmp/tab\011x`:      "/tmp/tab\tx",
		`/tmp/back\134slash`: `/tmp/back\slash`,
		`/tmp/short\04`:      `/tmp/short\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q): got %q; want %q", in, got, want)
		}
	}
}
