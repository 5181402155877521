package inject

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/veneermesh/veneer/pkg/kube/appprobe"
)

// mTLS with SPIFFE identities from SPIRE. The agent reaches the SPIRE
// agent's Workload API through the SPIFFE CSI driver (csi.spiffe.io), the
// way SPIRE's own Helm charts mount it into workloads; the pod is labelled
// so that a ClusterSPIFFEID (deploy/spire) registers the agent's
// container for spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
const (
	SPIFFEVolume    = "spiffe-workload-api"
	SPIFFEMountDir  = "/spiffe-workload-api"
	SPIFFESocket    = "unix://" + SPIFFEMountDir + "/spire-agent.sock"
	SPIFFECSIDriver = "csi.spiffe.io"
	// LabelMTLS is the pod label a ClusterSPIFFEID selects veneer's pods by;
	// its value is the mode.
	LabelMTLS = "veneer.dev/mtls"
	// envProbes carries the app's probes as they were, to the agent (and
	// back to the app containers when uninjected).
	envProbes = "VENEER_APP_PROBES"
)

// mtls sets the agent up for the mode of the annotation: the CSI volume,
// the Workload API's address, --mtls, the label; in strict mode, the app's
// probes move to the agent's admin port, where the kubelet's plaintext is
// let in (Istio rewrites them the same way).
func (w *workload) mtls(mode, where string, agent *corev1.Container) error {
	switch mode {
	case "off":
		return nil
	case "permissive", "strict":
	default:
		return fmt.Errorf("%s[%s]: %q is not an mTLS mode (off, permissive or strict)", where, AnnotationMTLS, mode)
	}
	agent.Args = append(agent.Args, "--mtls", mode)
	agent.Env = append(agent.Env, corev1.EnvVar{Name: "SPIFFE_ENDPOINT_SOCKET", Value: SPIFFESocket})
	agent.VolumeMounts = append(agent.VolumeMounts, corev1.VolumeMount{Name: SPIFFEVolume, MountPath: SPIFFEMountDir, ReadOnly: true})
	readOnly := true
	w.spec.Volumes = append(w.spec.Volumes, corev1.Volume{Name: SPIFFEVolume, VolumeSource: corev1.VolumeSource{
		CSI: &corev1.CSIVolumeSource{Driver: SPIFFECSIDriver, ReadOnly: &readOnly}}})
	if w.meta.Labels == nil {
		w.meta.Labels = map[string]string{}
	}
	w.meta.Labels[LabelMTLS] = mode
	if mode != "strict" {
		return nil
	}
	probes := map[string]appprobe.Probe{}
	for i := range w.spec.Containers {
		c := &w.spec.Containers[i]
		for kind, p := range map[string]**corev1.Probe{"livez": &c.LivenessProbe, "readyz": &c.ReadinessProbe, "startupz": &c.StartupProbe} {
			if *p == nil {
				continue
			}
			ap, ok, err := appProbe(c, (*p).ProbeHandler)
			if err != nil {
				return fmt.Errorf("%s.containers[%d] (%s): %w", w.fieldPath, i, c.Name, err)
			}
			if !ok {
				continue // an exec probe runs in the container, not over the network
			}
			path := appprobe.Path(c.Name, kind)
			probes[path] = ap
			(*p).ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt(AdminPort)}}
		}
	}
	if len(probes) > 0 {
		b, _ := json.Marshal(probes) // keys sorted: the same input injects to the same output
		agent.Env = append(agent.Env, corev1.EnvVar{Name: envProbes, Value: string(b)})
	}
	return nil
}

// appProbe is a container's probe as the agent runs it; not ok for a
// probe that does not go over the pod's network to a port (exec), or that
// the agent does not run (grpc).
func appProbe(c *corev1.Container, h corev1.ProbeHandler) (appprobe.Probe, bool, error) {
	switch {
	case h.HTTPGet != nil:
		port, err := portOf(c, h.HTTPGet.Port)
		if err != nil {
			return appprobe.Probe{}, false, fmt.Errorf("httpGet probe: %w", err)
		}
		g := &appprobe.HTTPGet{Path: h.HTTPGet.Path, Port: port, PortName: named(h.HTTPGet.Port), Scheme: string(h.HTTPGet.Scheme), Host: h.HTTPGet.Host}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			g.Headers = append(g.Headers, appprobe.Header{Name: hd.Name, Value: hd.Value})
		}
		return appprobe.Probe{HTTPGet: g}, true, nil
	case h.TCPSocket != nil:
		port, err := portOf(c, h.TCPSocket.Port)
		if err != nil {
			return appprobe.Probe{}, false, fmt.Errorf("tcpSocket probe: %w", err)
		}
		return appprobe.Probe{TCPSocket: &appprobe.TCPSocket{Port: port, PortName: named(h.TCPSocket.Port)}}, true, nil
	case h.GRPC != nil:
		return appprobe.Probe{}, false, fmt.Errorf("a grpc probe (port %d) would be refused by a strict mTLS port, and the agent does not run grpc probes: make it an httpGet or tcpSocket probe, or the port permissive (veneer.dev/mtls: permissive)", h.GRPC.Port)
	}
	return appprobe.Probe{}, false, nil
}

// named is the port's name, when the probe named it.
func named(p intstr.IntOrString) string {
	if p.Type == intstr.String {
		return p.StrVal
	}
	return ""
}

// portBack is the probe's port as the container gave it.
func portBack(port int, name string) intstr.IntOrString {
	if name != "" {
		return intstr.FromString(name)
	}
	return intstr.FromInt(port)
}

// portOf is a probe's port: a number, or the name of one of the
// container's ports.
func portOf(c *corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal < 1 || p.IntVal > 65535 {
			return 0, fmt.Errorf("port %d is not a port (1-65535)", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.StrVal })
	if i < 0 {
		return 0, fmt.Errorf("port %q is not the name of one of the container's ports", p.StrVal)
	}
	return int(c.Ports[i].ContainerPort), nil
}

// unmtls undoes mtls: the probes go back to the app's containers from the
// agent's environment, the volume and the label go.
func (w *workload) unmtls(agent *corev1.Container) {
	w.spec.Volumes = slices.DeleteFunc(w.spec.Volumes, func(v corev1.Volume) bool { return v.Name == SPIFFEVolume })
	delete(w.meta.Labels, LabelMTLS)
	if len(w.meta.Labels) == 0 {
		w.meta.Labels = nil
	}
	if agent == nil {
		return
	}
	i := slices.IndexFunc(agent.Env, func(e corev1.EnvVar) bool { return e.Name == envProbes })
	if i < 0 {
		return
	}
	probes, err := appprobe.Parse(agent.Env[i].Value)
	if err != nil {
		return // not ours to guess at: left as it is
	}
	for ci := range w.spec.Containers {
		c := &w.spec.Containers[ci]
		for kind, p := range map[string]*corev1.Probe{"livez": c.LivenessProbe, "readyz": c.ReadinessProbe, "startupz": c.StartupProbe} {
			ap, ok := probes[appprobe.Path(c.Name, kind)]
			if p == nil || !ok || p.HTTPGet == nil || p.HTTPGet.Path != appprobe.Path(c.Name, kind) {
				continue
			}
			p.ProbeHandler = handlerOf(ap)
		}
	}
}

// handlerOf is an appprobe.Probe as the container's probe handler again.
func handlerOf(ap appprobe.Probe) corev1.ProbeHandler {
	if ap.TCPSocket != nil {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: portBack(ap.TCPSocket.Port, ap.TCPSocket.PortName)}}
	}
	g := &corev1.HTTPGetAction{Path: ap.HTTPGet.Path, Port: portBack(ap.HTTPGet.Port, ap.HTTPGet.PortName), Host: ap.HTTPGet.Host, Scheme: corev1.URIScheme(ap.HTTPGet.Scheme)}
	for _, h := range ap.HTTPGet.Headers {
		g.HTTPHeaders = append(g.HTTPHeaders, corev1.HTTPHeader{Name: h.Name, Value: h.Value})
	}
	return corev1.ProbeHandler{HTTPGet: g}
}
