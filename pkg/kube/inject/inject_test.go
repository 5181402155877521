package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const deployment = `# a comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: app:1
        ports: [{containerPort: 8080}, {containerPort: 9090}, {containerPort: 53, protocol: UDP}]
`

func podSpecOf(t *testing.T, doc string) (corev1.PodSpec, map[string]string) {
	t.Helper()
	var d struct {
		Kind string
		Spec struct {
			corev1.PodSpec `json:",inline"`
			Template       *corev1.PodTemplateSpec `json:"template"`
			JobTemplate    *struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		}
		Metadata struct{ Annotations map[string]string }
	}
	if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Spec.Template != nil:
		return d.Spec.Template.Spec, d.Spec.Template.Annotations
	case d.Spec.JobTemplate != nil:
		return d.Spec.JobTemplate.Spec.Template.Spec, d.Spec.JobTemplate.Spec.Template.Annotations
	}
	return d.Spec.PodSpec, d.Metadata.Annotations
}

func find(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func TestInjectNative(t *testing.T) {
	out, err := Inject([]byte(deployment), Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec, ann := podSpecOf(t, string(out))
	if len(spec.InitContainers) != 2 || spec.InitContainers[0].Name != InitName || spec.InitContainers[1].Name != AgentName {
		t.Fatalf("init containers = %v; want veneer-init then the native agent sidecar", spec.InitContainers)
	}
	init, agent := spec.InitContainers[0], spec.InitContainers[1]
	if strings.Join(init.Args, " ") != "--inbound-ports 8080,9090" {
		t.Errorf("veneer-init args = %v; want the declared TCP ports", init.Args)
	}
	sc := init.SecurityContext
	if *sc.RunAsUser != 0 || *sc.Privileged || len(sc.Capabilities.Add) != 2 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("veneer-init security context = %+v; want root with NET_ADMIN and NET_RAW only, never privileged", sc)
	}
	if agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways || agent.StartupProbe == nil ||
		agent.StartupProbe.HTTPGet.Path != "/ready" {
		t.Errorf("agent = %+v; want restartPolicy Always with a startup probe on /ready", agent)
	}
	if l := agent.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Exec == nil || strings.Join(l.PreStop.Exec.Command, " ") != "/veneer-agent prestop" {
		t.Errorf("agent lifecycle = %+v; want the preStop hook /veneer-agent prestop", l)
	}
	asc := agent.SecurityContext
	if *asc.RunAsUser != 1337 || *asc.RunAsGroup != 1337 || !*asc.ReadOnlyRootFilesystem || len(asc.Capabilities.Add) != 0 {
		t.Errorf("agent security context = %+v; want 1337:1337, read-only, no capabilities", asc)
	}
	if len(spec.Volumes) != 2 || spec.Volumes[1].EmptyDir == nil || spec.Volumes[0].ConfigMap == nil {
		t.Errorf("volumes = %+v; want the config map and the lock emptyDir", spec.Volumes)
	}
	if ann[AnnotationInjected] != "inbound-ports=8080,9090 sidecar=native" || ann["prometheus.io/port"] != "15000" {
		t.Errorf("annotations = %v", ann)
	}
	reversible(t, deployment, out)
}

// The injected annotation names the ports the rules capture: excluded
// ones are not among them (seen on the real cluster: they were listed).
func TestInjectedAnnotationLeavesExcludedPortsOut(t *testing.T) {
	for _, tc := range []struct{ ports, exclude, want string }{
		{"8080,9100", "9100", "inbound-ports=8080 sidecar=native"},
		{"*", "9100,9200", "inbound-ports=* exclude-inbound-ports=9100,9200 sidecar=native"},
		{"9100", "9100", "inbound-ports=none sidecar=native"},
		{"8080", "", "inbound-ports=8080 sidecar=native"},
	} {
		doc := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {\"" + AnnotationInboundPorts + "\": \"" + tc.ports + "\""
		if tc.exclude != "" {
			doc += ", \"" + AnnotationExcludeInboundPorts + "\": \"" + tc.exclude + "\""
		}
		doc += "}\nspec:\n  containers: [{name: app, image: app}]\n"
		out, err := Inject([]byte(doc), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, ann := podSpecOf(t, string(out))
		if a := ann[AnnotationInjected]; a != tc.want {
			t.Errorf("ports %q, excluded %q: %s = %q; want %q", tc.ports, tc.exclude, AnnotationInjected, a, tc.want)
		}
	}
}

// reversible checks that injecting out (in injected) again changes
// nothing, and that uninjecting it gives in back.
func reversible(t *testing.T, in string, out []byte) {
	t.Helper()
	again, err := Inject(out, Options{})
	if err != nil || string(again) != string(out) {
		t.Errorf("injecting twice differs from injecting once:\n%s\n---\n%s", out, again)
	}
	back, err := Uninject(out)
	if err != nil || !equalYAML(back, []byte(in)) {
		t.Errorf("uninject = %s, %v; want the original back", back, err)
	}
}

func TestInjectAnnotationsAndKinds(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {app: shop}
  annotations: {veneer.dev/inbound-ports: "80", veneer.dev/exclude-inbound-ports: "9100", veneer.dev/sidecar: classic, veneer.dev/workers: "2",
    veneer.dev/otlp-endpoint: "http://otel-collector.observability:4318", veneer.dev/trace-sampling: "0.1"}
spec:
  containers: [{name: app, image: app}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: job}]
---
apiVersion: v1
kind: ConfigMap   # not a workload: unchanged, comments and all
metadata: {name: c}
data: {a: b}
`
	out, err := Inject([]byte(in), Options{AgentImage: "reg/agent:1"})
	if err != nil {
		t.Fatal(err)
	}
	docs := docSeparator.Split(string(out), -1)
	pod, _ := podSpecOf(t, docs[0])
	if len(pod.Containers) != 2 || pod.Containers[0].Name != AgentName || pod.Containers[0].Image != "reg/agent:1" {
		t.Errorf("classic sidecar: containers = %v; want the agent first", pod.Containers)
	}
	if a := strings.Join(pod.InitContainers[0].Args, " "); a != "--inbound-ports 80 --exclude-inbound-ports 9100" {
		t.Errorf("veneer-init args = %q", a)
	}
	if a := strings.Join(pod.Containers[0].Args, " "); a != "--config /etc/veneer/config.yaml --workers 2 --otlp-endpoint http://otel-collector.observability:4318 --trace-sampling 0.1" {
		t.Errorf("veneer-agent args = %q", a)
	}
	env := map[string]string{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["VENEER_SERVICE_NAME"] != "shop" || env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("veneer-agent env = %v; want the app label as the service, the pod's names from the downward API", env)
	}
	job, _ := podSpecOf(t, docs[1])
	if find(job.InitContainers, AgentName) == nil || job.InitContainers[0].Args[1] != "*" {
		t.Errorf("CronJob: init containers = %v; want injected, every port (none declared)", job.InitContainers)
	}
	if !strings.Contains(docs[2], "kind: ConfigMap   # not a workload: unchanged, comments and all") {
		t.Errorf("the ConfigMap changed:\n%s", docs[2])
	}
}

func TestInjectErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: true, containers: [{name: a}]}\n",
			"document 1 (Pod/p): spec.hostNetwork: a pod on the node's network cannot be injected (its iptables are the node's)"},
		{"kind: Deployment\nmetadata: {name: d, annotations: {veneer.dev/inbound-ports: http}}\nspec: {template: {spec: {containers: [{name: a}]}}}\n",
			`document 1 (Deployment/d): metadata.annotations[veneer.dev/inbound-ports]: "http" is not a port (1-65535)`},
		{"kind: Pod\nmetadata: {name: p, annotations: {veneer.dev/sidecar: sometimes}}\nspec: {containers: [{name: a}]}\n",
			`document 1 (Pod/p): metadata.annotations[veneer.dev/sidecar]: "sometimes" is not a sidecar kind (native or classic)`},
		{"kind: Pod\nmetadata: {name: p, annotations: {veneer.dev/workers: \"-1\"}}\nspec: {containers: [{name: a}]}\n",
			`document 1 (Pod/p): metadata.annotations[veneer.dev/workers]: "-1" is not a number of cores (0-1024; 0: as many as the container may use)`},
		{"kind: Pod\nmetadata: {name: p, annotations: {veneer.dev/otlp-endpoint: \"collector:4318\"}}\nspec: {containers: [{name: a}]}\n",
			`document 1 (Pod/p): metadata.annotations[veneer.dev/otlp-endpoint]: "collector:4318" is not an http:// or https:// URL of a collector (e.g. http://otel-collector:4318)`},
		{"kind: Pod\nmetadata: {name: p, annotations: {veneer.dev/trace-sampling: \"5%\"}}\nspec: {containers: [{name: a}]}\n",
			`document 1 (Pod/p): metadata.annotations[veneer.dev/trace-sampling]: "5%" is not a share between 0 and 1 (0.01 is 1%)`},
		{"kind: Service\n---\nkind: Pod\nspec: {containerz: []}\n", `document 2 (Pod): error unmarshaling JSON: while decoding JSON: json: unknown field "containerz"`},
		{"kind: [unclosed\n", "document 1: not Kubernetes YAML: yaml: line 1: did not find expected ',' or ']'"},
	} {
		out, err := Inject([]byte(tc.in), Options{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Inject(%q) error = %v; want %q", tc.in, err, tc.want)
		}
		if out != nil {
			t.Errorf("Inject(%q) wrote %q on error; want nothing", tc.in, out)
		}
	}
}

// Every output decodes strictly into the API types of its kind.
func TestOutputDecodesStrictly(t *testing.T) {
	in := deployment + "---\n" + `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: db, ports: [{containerPort: 5432}]}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec: {containers: [{name: ds, image: ds}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: j, image: j}]}
`
	for _, sidecar := range []string{"native", "classic"} {
		out, err := Inject([]byte(in), Options{Sidecar: sidecar})
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(out), -1) {
			obj := newObject(map[int]string{0: "Deployment", 1: "StatefulSet", 2: "DaemonSet", 3: "Job"}[i])
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d: %v", sidecar, i+1, err)
			}
			if spec := podTemplate(obj).spec; find(append(spec.InitContainers, spec.Containers...), AgentName) == nil {
				t.Errorf("%s document %d: no agent injected", sidecar, i+1)
			}
		}
	}
}

func TestMain_CLI(t *testing.T) {
	var out, errOut strings.Builder
	if err := Main([]string{"inject"}, strings.NewReader(deployment), &out, &errOut); err != nil || !strings.Contains(out.String(), AgentName) {
		t.Errorf("inject from stdin: %v, %q", err, out.String())
	}
	out.Reset()
	err := Main([]string{"inject", "-f", "-"}, strings.NewReader("kind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: true}\n"), &out, &errOut)
	if err == nil || !strings.HasPrefix(err.Error(), "standard input: document 1 (Pod/p): spec.hostNetwork") || out.Len() != 0 {
		t.Errorf("a bad document: %v, wrote %q; want an error naming the input, document and field, and nothing written", err, out.String())
	}
	if err := Main([]string{"inject", "-f", "/nonexistent.yaml"}, nil, &out, &errOut); err == nil {
		t.Error("a missing file: no error")
	}
	if err := Main([]string{"deploy"}, nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("an unknown command: %v; want the usage", err)
	}
}
