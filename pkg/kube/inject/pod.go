package inject

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/veneermesh/veneer/pkg/agent/otlp"
	"github.com/veneermesh/veneer/pkg/intercept/capture"
)

// prometheusAnnotations are added so that an annotation-driven Prometheus
// scrapes the agent; removed again by Uninject when unchanged.
var prometheusAnnotations = map[string]string{
	"prometheus.io/scrape": "true",
	"prometheus.io/port":   strconv.Itoa(AdminPort),
	"prometheus.io/path":   "/metrics",
}

// annotation reads a setting from the pod template, else the workload.
func (w *workload) annotation(key string) (string, string, bool) {
	if v, ok := w.meta.Annotations[key]; ok {
		return v, "metadata.annotations", ok
	}
	if v, ok := w.owner.Annotations[key]; ok && w.owner != w.meta {
		return v, "metadata.annotations", ok
	}
	return "", "", false
}

func (w *workload) inject(o Options) error {
	w.uninject() // injecting twice is injecting once
	if w.spec.HostNetwork {
		return fmt.Errorf("%s.hostNetwork: a pod on the node's network cannot be injected (its iptables are the node's)", w.fieldPath)
	}
	ports, err := w.ports()
	if err != nil {
		return err
	}
	exclude := ""
	if v, where, ok := w.annotation(AnnotationExcludeInboundPorts); ok {
		ps, err := capture.ParsePortSet(where+"["+AnnotationExcludeInboundPorts+"]", v)
		if err != nil {
			return err
		}
		exclude = ps.String()
	}
	sidecar := o.Sidecar
	if v, where, ok := w.annotation(AnnotationSidecar); ok {
		if v != "native" && v != "classic" {
			return fmt.Errorf("%s[%s]: %q is not a sidecar kind (native or classic)", where, AnnotationSidecar, v)
		}
		sidecar = v
	}

	var agentArgs []string
	if v, where, ok := w.annotation(AnnotationWorkers); ok {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 1024 {
			return fmt.Errorf("%s[%s]: %q is not a number of cores (0-1024; 0: as many as the container may use)", where, AnnotationWorkers, v)
		}
		agentArgs = append(agentArgs, "--workers", v)
	}
	if v, where, ok := w.annotation(AnnotationOTLPEndpoint); ok {
		if _, err := otlp.ParseEndpoint(v); err != nil {
			return fmt.Errorf("%s[%s]: %w", where, AnnotationOTLPEndpoint, err)
		}
		agentArgs = append(agentArgs, "--otlp-endpoint", v)
	}
	if v, where, ok := w.annotation(AnnotationTraceSampling); ok {
		if f, err := strconv.ParseFloat(v, 64); err != nil || otlp.CheckSampling(f) != nil {
			return fmt.Errorf("%s[%s]: %q is not a share between 0 and 1 (0.01 is 1%%)", where, AnnotationTraceSampling, v)
		}
		agentArgs = append(agentArgs, "--trace-sampling", v)
	}

	initArgs := []string{"--inbound-ports", ports}
	if exclude != "" {
		initArgs = append(initArgs, "--exclude-inbound-ports", exclude)
	}
	if v, where, ok := w.annotation(AnnotationOutbound); ok {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s[%s]: %q is not true or false", where, AnnotationOutbound, v)
		}
		if on {
			initArgs = append(initArgs, "--outbound")
		}
	}
	init := initContainer(o.InitImage, initArgs)
	agent := agentContainer(o.AgentImage, w.serviceName())
	agent.Args = append(agent.Args, agentArgs...)
	if v, where, ok := w.annotation(AnnotationMTLS); ok {
		if err := w.mtls(v, where, &agent); err != nil {
			return err
		}
	}
	if sidecar == "native" {
		always := corev1.ContainerRestartPolicyAlways
		agent.RestartPolicy = &always
		// Ready before the app starts: the kubelet starts the next
		// container once the startup probe passes.
		agent.StartupProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt(AdminPort)}},
			PeriodSeconds:    1,
			FailureThreshold: 30,
		}
		w.spec.InitContainers = append([]corev1.Container{init, agent}, w.spec.InitContainers...)
	} else {
		w.spec.InitContainers = append([]corev1.Container{init}, w.spec.InitContainers...)
		// First, so that the kubelet starts it before the app.
		w.spec.Containers = append([]corev1.Container{agent}, w.spec.Containers...)
	}
	optional := true
	w.spec.Volumes = append(w.spec.Volumes,
		corev1.Volume{Name: ConfigVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName}, Optional: &optional}}},
		corev1.Volume{Name: LockVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	)
	if w.meta.Annotations == nil {
		w.meta.Annotations = map[string]string{}
	}
	w.meta.Annotations[AnnotationInjected] = captured(ports, exclude) + " sidecar=" + sidecar
	for k, v := range prometheusAnnotations {
		if _, ok := w.meta.Annotations[k]; !ok {
			w.meta.Annotations[k] = v
		}
	}
	return nil
}

// ports are the ports to capture: the annotation's, else every TCP port the
// containers declare, else all.
// captured says which inbound ports the rules capture, for the injected
// annotation: the ports less the excluded ones ("none" when that leaves
// nothing), or every port but the excluded ones. Both were checked.
func captured(ports, exclude string) string {
	ps, _ := capture.ParsePortSet("", ports)
	ex, _ := capture.ParsePortSet("", exclude)
	switch {
	case ps.All && !ex.Empty():
		return "inbound-ports=* exclude-inbound-ports=" + ex.String()
	case ps.All:
		return "inbound-ports=*"
	}
	ps.Ports = slices.DeleteFunc(ps.Ports, ex.Contains)
	if ps.Empty() {
		return "inbound-ports=none"
	}
	return "inbound-ports=" + ps.String()
}

func (w *workload) ports() (string, error) {
	if v, where, ok := w.annotation(AnnotationInboundPorts); ok {
		ps, err := capture.ParsePortSet(where+"["+AnnotationInboundPorts+"]", v)
		if err != nil {
			return "", err
		}
		return ps.String(), nil
	}
	var declared []string
	for _, c := range w.spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				declared = append(declared, strconv.Itoa(int(p.ContainerPort)))
			}
		}
	}
	if len(declared) == 0 {
		return "*", nil
	}
	ps, err := capture.ParsePortSet(w.fieldPath+".containers[].ports", strings.Join(declared, ","))
	if err != nil {
		return "", err
	}
	return ps.String(), nil
}

func initContainer(image string, args []string) corev1.Container {
	root, no, yes := int64(0), false, true
	return corev1.Container{
		Name:  InitName,
		Image: image,
		Args:  args,
		// iptables-legacy takes its lock under /run: writable, on a
		// read-only root.
		VolumeMounts: []corev1.VolumeMount{{Name: LockVolume, MountPath: "/run"}},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &root,
			RunAsNonRoot:             &no,
			Privileged:               &no,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities: &corev1.Capabilities{
				Drop: []corev1.Capability{"ALL"},
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
			},
		},
	}
}

// serviceName is what the workload's spans are named: the pod template's
// app.kubernetes.io/name label, else its app label, else the workload's name.
func (w *workload) serviceName() string {
	for _, l := range []string{"app.kubernetes.io/name", "app"} {
		if v := w.meta.Labels[l]; v != "" {
			return v
		}
	}
	return w.name
}

func agentContainer(image, service string) corev1.Container {
	uid, no, yes := int64(ProxyUID), false, true
	ready := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt(AdminPort)}},
		PeriodSeconds: 5,
	}
	return corev1.Container{
		Name:           AgentName,
		Image:          image,
		Args:           []string{"--config", ConfigMountDir + "/config.yaml"},
		Ports:          []corev1.ContainerPort{{Name: "veneer-admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: ready,
		// When the pod starts terminating, clients on kept connections are
		// told to go while the app still answers (agent.PreStop): a native
		// sidecar's preStop runs then, its SIGTERM only after the app.
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Exec: &corev1.ExecAction{Command: []string{AgentBinary, "prestop"}}}},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(AdminPort)}},
			PeriodSeconds: 10,
		},
		VolumeMounts: []corev1.VolumeMount{{Name: ConfigVolume, MountPath: ConfigMountDir, ReadOnly: true}},
		Env: []corev1.EnvVar{
			{Name: "VENEER_SERVICE_NAME", Value: service},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			RunAsNonRoot:             &yes,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

func (w *workload) uninject() {
	mine := func(c corev1.Container) bool { return c.Name == InitName || c.Name == AgentName }
	var agent *corev1.Container
	for _, cs := range [][]corev1.Container{w.spec.InitContainers, w.spec.Containers} {
		if i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == AgentName }); i >= 0 {
			agent = &cs[i]
		}
	}
	w.unmtls(agent)
	w.spec.InitContainers = slices.DeleteFunc(w.spec.InitContainers, mine)
	w.spec.Containers = slices.DeleteFunc(w.spec.Containers, mine)
	w.spec.Volumes = slices.DeleteFunc(w.spec.Volumes, func(v corev1.Volume) bool { return v.Name == ConfigVolume || v.Name == LockVolume })
	if len(w.spec.InitContainers) == 0 {
		w.spec.InitContainers = nil
	}
	if len(w.spec.Volumes) == 0 {
		w.spec.Volumes = nil
	}
	if _, ok := w.meta.Annotations[AnnotationInjected]; !ok {
		return
	}
	delete(w.meta.Annotations, AnnotationInjected)
	for k, v := range prometheusAnnotations {
		if w.meta.Annotations[k] == v {
			delete(w.meta.Annotations, k)
		}
	}
	if len(w.meta.Annotations) == 0 {
		w.meta.Annotations = nil
	}
}
