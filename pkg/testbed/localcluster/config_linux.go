//go:build linux

package localcluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// The components' configuration files, rendered from the cluster's layout.
// Each setting that differs from a default says why.
var configs = template.Must(template.New("").Parse(`
{{define "containerd.toml"}}version = 2
root = "{{.Dir}}/containerd/root"
state = "{{.Dir}}/containerd/state"
# Snapshotters this machine cannot use, and tracing, stay off.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{{.Dir}}/containerd.sock"
[ttrpc]
  address = "{{.Dir}}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.PauseImage}}"
  # A VM may withhold CAP_SYS_RESOURCE: runc then fails to lower a pause
  # container's oom_score_adj below its own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # The pods' network namespaces live in the cluster's folder, so that Down
  # finds them there.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{{.Dir}}/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBin}}"
    conf_dir = "{{.Dir}}/cni"
{{end}}

{{define "cni.conflist"}}{
  "cniVersion": "1.0.0",
  "name": "veneer-local",
  "plugins": [{
    "type": "ptp",
    "ipam": {
      "type": "host-local",
      "dataDir": "{{.Dir}}/cni-ipam",
      "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }, {
    "type": "portmap",
    "capabilities": {"portMappings": true}
  }]
}
{{end}}

{{define "kubeconfig"}}apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://{{.NodeIP}}:6443
    certificate-authority: {{.PKI}}/ca.crt
users:
- name: {{.User}}
  user:
    client-certificate: {{.PKI}}/{{.User}}.crt
    client-key: {{.PKI}}/{{.User}}.key
contexts:
- name: local
  context: {cluster: local, user: {{.User}}}
current-context: local
{{end}}

{{define "kubelet.yaml"}}apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{.PKI}}/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: {{.PKI}}/kubelet-serving.crt
tlsPrivateKeyFile: {{.PKI}}/kubelet-serving.key
containerRuntimeEndpoint: unix://{{.Dir}}/containerd.sock
podLogsDir: {{.Dir}}/pod-logs
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# Only cgroup v1 is usable on the machines this was made on.
failCgroupV1: false
cgroupDriver: cgroupfs
# Every pod's cgroup under the cluster's own, which Down removes.
cgroupRoot: /{{.Cgroup}}
failSwapOn: false
resolvConf: /etc/resolv.conf
# A ConfigMap edit reaches the pod's volume within a sync (a minute by default).
syncFrequency: 10s
# A test machine's disk and memory are not the kubelet's to guard.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The README's advice for agent restarts, allowed on this node.
allowedUnsafeSysctls: ["net.ipv4.tcp_migrate_req"]
maxPods: 30
{{end}}

{{define "kube-proxy.yaml"}}apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: {{.Dir}}/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: {{.PodCIDR}}
hostnameOverride: {{.NodeName}}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# The node is a network namespace: conntrack's table size is the machine's.
conntrack: {maxPerCore: 0, min: 0}
{{end}}
`))

// layout is what the templates are rendered from.
type layout struct {
	Dir, PKI, CNIBin string
	PauseImage       string
	NodeName, NodeIP string
	PodCIDR          string
	Cgroup           string
	User             string // a kubeconfig's user, the name of its certificate
}

// render writes template name, rendered from l, to path.
func (l layout) render(name, path string) error {
	var b bytes.Buffer
	if err := configs.ExecuteTemplate(&b, name, l); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// kubeconfig writes DIR/USER.kubeconfig for the user of certificate user.
func (l layout) kubeconfig(user string) (string, error) {
	l.User = user
	path := filepath.Join(l.Dir, user+".kubeconfig")
	return path, l.render("kubeconfig", path)
}
