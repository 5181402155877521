// Package inject adds veneer to Kubernetes workloads, as `linkerd inject`
// does: veneer-init as an init container, the agent as a sidecar (a native
// sidecar by default), the config and lock volumes, and an annotation that
// records what was done. Injecting twice is the same as injecting once;
// Uninject reverses it.
//
//	out, err := inject.Inject(yamlBytes, inject.Options{})
//
// Per-workload annotations (on the workload or its pod template) choose:
//
//	veneer.dev/inbound-ports: "8080,9090"   # default: the containers' declared TCP ports, or "*"
//	veneer.dev/exclude-inbound-ports: "9100"
//	veneer.dev/sidecar: native | classic     # default: native (Kubernetes 1.29+)
//	veneer.dev/workers: "2"                 # the agent's --workers; default 1, 0 for the container's CPU limit
//	veneer.dev/otlp-endpoint: http://otel-collector.observability:4318   # the agent's --otlp-endpoint
//	veneer.dev/trace-sampling: "0.1"        # the agent's --trace-sampling; default 0.01
//	veneer.dev/outbound: "true"             # capture the app's outgoing TCP too (veneer-init --outbound)
//	veneer.dev/mtls: strict | permissive     # mTLS with an SVID from SPIRE (the SPIFFE CSI driver); default off
//
// The agent's spans are named after the workload: its pod template's
// app.kubernetes.io/name label, else its app label, else the workload's
// name; their resource has the pod's name and namespace (downward API).
//
// With veneer.dev/mtls the agent gets the SPIRE agent's Workload API
// through the SPIFFE CSI driver and the pod the label veneer.dev/mtls,
// which deploy/spire's ClusterSPIFFEID selects; in strict mode the app's
// httpGet and tcpSocket probes move to the agent's admin port
// (/app-health/<container>/<kind>), which runs them on the pod's loopback,
// since the kubelet is no meshed peer (Istio's probe rewrite).
package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Annotations.
const (
	AnnotationInboundPorts        = "veneer.dev/inbound-ports"
	AnnotationExcludeInboundPorts = "veneer.dev/exclude-inbound-ports"
	AnnotationSidecar             = "veneer.dev/sidecar"
	AnnotationWorkers             = "veneer.dev/workers"
	AnnotationOTLPEndpoint        = "veneer.dev/otlp-endpoint"
	AnnotationTraceSampling       = "veneer.dev/trace-sampling"
	AnnotationMTLS                = "veneer.dev/mtls"
	AnnotationOutbound            = "veneer.dev/outbound"
	AnnotationInjected            = "veneer.dev/injected"
)

// Names of what injection adds.
const (
	InitName       = "veneer-init"
	AgentName      = "veneer-agent"
	ConfigVolume   = "veneer-config"
	LockVolume     = "veneer-xtables-lock"
	ConfigMapName  = "veneer-config"
	ConfigMountDir = "/etc/veneer"
	AdminPort      = 15000
	ProxyUID       = 1337
	AgentBinary    = "/veneer-agent" // where Dockerfile.agent puts it
)

// Options are the images to inject.
type Options struct {
	InitImage  string // default veneer-init:dev
	AgentImage string // default veneer-agent:dev
	Sidecar    string // native (the default) or classic, where no annotation says
}

func (o Options) withDefaults() Options {
	if o.InitImage == "" {
		o.InitImage = "veneer-init:dev"
	}
	if o.AgentImage == "" {
		o.AgentImage = "veneer-agent:dev"
	}
	if o.Sidecar == "" {
		o.Sidecar = "native"
	}
	return o
}

// Inject adds veneer to every workload in in (multi-document YAML); other
// documents pass through unchanged. On any error nothing is returned.
func Inject(in []byte, o Options) ([]byte, error) {
	o = o.withDefaults()
	if o.Sidecar != "native" && o.Sidecar != "classic" {
		return nil, fmt.Errorf("--sidecar: %q is not a sidecar kind (native or classic)", o.Sidecar)
	}
	return transform(in, func(w *workload) error { return w.inject(o) })
}

// Uninject removes what Inject added.
func Uninject(in []byte) ([]byte, error) {
	return transform(in, func(w *workload) error { w.uninject(); return nil })
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// transform applies fn to every workload document of in.
func transform(in []byte, fn func(*workload) error) ([]byte, error) {
	docs := docSeparator.Split(string(in), -1)
	var out []string
	for i, doc := range docs {
		res, err := transformDoc(doc, fn)
		if err != nil {
			return nil, fmt.Errorf("document %d%s", i+1, err)
		}
		out = append(out, res)
	}
	return []byte(strings.Join(out, "---")), nil
}

func transformDoc(doc string, fn func(*workload) error) (string, error) {
	if strings.TrimSpace(stripComments(doc)) == "" {
		return doc, nil
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return "", fmt.Errorf(": not Kubernetes YAML: %v", oneLine(err))
	}
	obj := newObject(tm.Kind)
	if obj == nil {
		return doc, nil // a kind without pods: unchanged
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return "", fmt.Errorf(" (%s): %v", tm.Kind, oneLine(err))
	}
	w := podTemplate(obj)
	if err := fn(w); err != nil {
		return "", fmt.Errorf(" (%s/%s): %w", tm.Kind, w.name, err)
	}
	b, err := marshal(obj)
	if err != nil {
		return "", fmt.Errorf(" (%s/%s): %w", tm.Kind, w.name, err)
	}
	lead := "\n"
	if !strings.HasPrefix(doc, "\n") {
		lead = "" // the first document
	}
	return lead + string(b), nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")), " ")
}

// newObject is an empty object of a kind injection understands, or nil.
func newObject(kind string) any {
	switch kind {
	case "Pod":
		return &corev1.Pod{}
	case "Deployment":
		return &appsv1.Deployment{}
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "DaemonSet":
		return &appsv1.DaemonSet{}
	case "ReplicaSet":
		return &appsv1.ReplicaSet{}
	case "Job":
		return &batchv1.Job{}
	case "CronJob":
		return &batchv1.CronJob{}
	}
	return nil
}

// workload is the parts of an object injection changes.
type workload struct {
	name      string
	owner     *metav1.ObjectMeta // the workload's own metadata
	meta      *metav1.ObjectMeta // the pod template's
	spec      *corev1.PodSpec
	fieldPath string // where the pod spec is, for errors
}

func podTemplate(obj any) *workload {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &o.ObjectMeta, spec: &o.Spec, fieldPath: "spec"}
	case *appsv1.Deployment:
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &o.Spec.Template.ObjectMeta, spec: &o.Spec.Template.Spec, fieldPath: "spec.template.spec"}
	case *appsv1.StatefulSet:
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &o.Spec.Template.ObjectMeta, spec: &o.Spec.Template.Spec, fieldPath: "spec.template.spec"}
	case *appsv1.DaemonSet:
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &o.Spec.Template.ObjectMeta, spec: &o.Spec.Template.Spec, fieldPath: "spec.template.spec"}
	case *appsv1.ReplicaSet:
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &o.Spec.Template.ObjectMeta, spec: &o.Spec.Template.Spec, fieldPath: "spec.template.spec"}
	case *batchv1.Job:
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &o.Spec.Template.ObjectMeta, spec: &o.Spec.Template.Spec, fieldPath: "spec.template.spec"}
	case *batchv1.CronJob:
		t := &o.Spec.JobTemplate.Spec.Template
		return &workload{name: o.Name, owner: &o.ObjectMeta, meta: &t.ObjectMeta, spec: &t.Spec, fieldPath: "spec.jobTemplate.spec.template.spec"}
	}
	panic(fmt.Sprintf("inject: no pod template in %T", obj))
}

// marshal renders obj as YAML without the empty fields the API types
// always carry (creationTimestamp: null, status: {}).
func marshal(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	prune(m)
	j, err = json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// prune drops null and empty-object values, recursively, but for an
// emptyDir, whose empty object is its meaning.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 && k != "emptyDir" {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

// equalYAML reports whether two documents hold the same data.
func equalYAML(a, b []byte) bool {
	ja, err1 := yaml.YAMLToJSON(a)
	jb, err2 := yaml.YAMLToJSON(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
