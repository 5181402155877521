// Package deploy holds the Kubernetes manifests; its test decodes every one
// of them strictly into the Kubernetes API types and checks what matters.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
	_ "github.com/veneermesh/veneer/pkg/decor/all" // every decoration's module
	"github.com/veneermesh/veneer/pkg/kube/inject"
)

// notKubernetes are the YAML files in deploy/ that are other tools' config.
var notKubernetes = map[string]bool{
	"config.yaml":                       true, // veneer-agent's own config
	"kind/cluster.yaml":                 true, // kind's
	"monitoring/prometheus.yaml":        true, // Prometheus' scrape job
	"monitoring/veneer-rules.yaml":      true, // Prometheus' rule files
	"monitoring/veneer-rules_test.yaml": true, // promtool's tests of them
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func docs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range docSep.Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			out = append(out, d)
		}
	}
	return out
}

// TestManifestsDecodeStrictly: every Kubernetes document in deploy/ is a
// valid object of its kind, with no unknown field.
func TestManifestsDecodeStrictly(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || notKubernetes[filepath.ToSlash(path)] {
			return err
		}
		for i, doc := range docs(t, path) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Errorf("%s document %d: %v", path, i+1, err)
				continue
			}
			var obj any
			switch tm.Kind {
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Service":
				obj = &corev1.Service{}
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Pod":
				obj = &corev1.Pod{}
			case "Job":
				obj = &batchv1.Job{}
			case "ServiceMonitor":
				// A Prometheus Operator type: checked by shape.
				var sm struct {
					APIVersion string `json:"apiVersion"`
					Spec       struct {
						Selector  metav1.LabelSelector `json:"selector"`
						Endpoints []struct{ Port, Path string }
					}
				}
				if err := yaml.Unmarshal([]byte(doc), &sm); err != nil || sm.APIVersion != "monitoring.coreos.com/v1" ||
					len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "veneer-admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
					t.Errorf("%s: ServiceMonitor %+v, %v; want the veneer-admin port's /metrics", path, sm, err)
				}
				continue
			case "ClusterSPIFFEID":
				// spire-controller-manager's type: checked by shape, against
				// what inject gives the agent.
				var id struct {
					metav1.TypeMeta   `json:",inline"`
					metav1.ObjectMeta `json:"metadata"`
					Spec              struct {
						SPIFFEIDTemplate          string               `json:"spiffeIDTemplate"`
						PodSelector               metav1.LabelSelector `json:"podSelector"`
						WorkloadSelectorTemplates []string             `json:"workloadSelectorTemplates"`
					} `json:"spec"`
				}
				if err := yaml.UnmarshalStrict([]byte(doc), &id); err != nil {
					t.Errorf("%s: %v", path, err)
				}
				sel := id.Spec.PodSelector.MatchExpressions
				if id.APIVersion != "spire.spiffe.io/v1alpha1" ||
					id.Spec.SPIFFEIDTemplate != "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}" ||
					len(sel) != 1 || sel[0].Key != inject.LabelMTLS ||
					!slices.Equal(id.Spec.WorkloadSelectorTemplates, []string{"k8s:container-name:" + inject.AgentName}) {
					t.Errorf("%s: ClusterSPIFFEID %+v; want the agent containers of pods labelled %s, as ns/<ns>/sa/<sa>", path, id, inject.LabelMTLS)
				}
				continue
			default:
				t.Errorf("%s document %d: kind %q has no check here", path, i+1, tm.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", path, i+1, tm.Kind, err)
			}
			if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == inject.ConfigMapName {
				if _, err := config.Parse([]byte(cm.Data["config.yaml"]), decor.Schema()); err != nil {
					t.Errorf("%s: the agent's config does not parse: %v", path, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGeneratedManifestsUpToDate: python-native.yaml and
// python-classic.yaml are what veneerctl inject makes of python-app.yaml.
func TestGeneratedManifestsUpToDate(t *testing.T) {
	app, err := os.ReadFile("kubernetes/python-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, sidecar := range []string{"native", "classic"} {
		want, err := inject.Inject(app, inject.Options{Sidecar: sidecar})
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile("kubernetes/python-" + sidecar + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		header := "# Generated by veneerctl inject from python-app.yaml (make manifests); do not edit.\n"
		if string(got) != header+string(want) {
			t.Errorf("kubernetes/python-%s.yaml is out of date: run make manifests", sidecar)
		}
	}
}

func deployment(t *testing.T, path string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := yaml.UnmarshalStrict([]byte(docs(t, path)[0]), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// TestSidecarVariants checks the fields that matter in both variants.
func TestSidecarVariants(t *testing.T) {
	for _, sidecar := range []string{"native", "classic"} {
		t.Run(sidecar, func(t *testing.T) {
			spec := deployment(t, "kubernetes/python-"+sidecar+".yaml").Spec.Template.Spec
			init := container(spec.InitContainers, inject.InitName)
			if init == nil || spec.InitContainers[0].Name != inject.InitName {
				t.Fatalf("veneer-init is not the first init container: %v", spec.InitContainers)
			}
			isc := init.SecurityContext
			if *isc.Privileged || *isc.RunAsUser != 0 || strings.Join(capsOf(isc.Capabilities.Add), ",") != "NET_ADMIN,NET_RAW" ||
				strings.Join(capsOf(isc.Capabilities.Drop), ",") != "ALL" || strings.Join(init.Args, " ") != "--inbound-ports 8080" {
				t.Errorf("veneer-init = %+v; want NET_ADMIN and NET_RAW only, not privileged, capturing 8080", init)
			}
			var agent *corev1.Container
			if sidecar == "native" {
				agent = container(spec.InitContainers, inject.AgentName)
				if agent == nil || agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways ||
					agent.StartupProbe == nil || agent.StartupProbe.HTTPGet.Path != "/ready" || agent.StartupProbe.HTTPGet.Port.IntValue() != 15000 {
					t.Fatalf("native sidecar = %+v; want an init container with restartPolicy Always and a startup probe on /ready", agent)
				}
			} else {
				agent = container(spec.Containers, inject.AgentName)
				if agent == nil || spec.Containers[0].Name != inject.AgentName || agent.RestartPolicy != nil {
					t.Fatalf("classic sidecar: containers = %v; want the agent first", spec.Containers)
				}
			}
			asc := agent.SecurityContext
			if *asc.RunAsUser != 1337 || *asc.RunAsGroup != 1337 || !*asc.RunAsNonRoot || !*asc.ReadOnlyRootFilesystem ||
				len(asc.Capabilities.Add) != 0 || agent.ReadinessProbe == nil || agent.Ports[0].ContainerPort != 15000 {
				t.Errorf("agent = %+v; want 1337:1337, read-only, no capabilities, ready on /ready, admin port 15000", agent)
			}
			app := container(spec.Containers, "python")
			if app == nil || app.ReadinessProbe.HTTPGet.Port.IntValue() != 8080 || app.Ports[0].ContainerPort != 8080 {
				t.Errorf("the app's own probes or port changed: %+v", app)
			}
			vols := map[string]corev1.Volume{}
			for _, v := range spec.Volumes {
				vols[v.Name] = v
			}
			if v, ok := vols[inject.ConfigVolume]; !ok || v.ConfigMap == nil || v.ConfigMap.Name != inject.ConfigMapName {
				t.Errorf("config volume = %+v", v)
			}
			if v, ok := vols[inject.LockVolume]; !ok || v.EmptyDir == nil {
				t.Errorf("lock volume = %+v", v)
			}
		})
	}
}

func capsOf(cs []corev1.Capability) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}

// TestDashboard: the Grafana dashboard is JSON and asks only for metrics the
// agent exports.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	known := regexp.MustCompile(`^(veneer_(requests_total|request_duration_seconds_bucket|tcp_(received|sent)_bytes_total|tcp_active_connections|tcp_connections_opened_total)|process_resident_memory_bytes|go_goroutines)$`)
	metric := regexp.MustCompile(`\b([a-z_]+)\{`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllStringSubmatch(tg.Expr, -1) {
				if !known.MatchString(m[1]) {
					t.Errorf("dashboard queries %q, which the agent does not export", m[1])
				}
			}
		}
	}
}

// The rules users load pass promtool's checks and its unit tests, which
// fire each alert on made-up series and keep it quiet on healthy ones.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil && os.Getenv("CI") != "" {
		t.Fatal("requirement missing in CI: promtool (Debian's prometheus package; make deps installs it):", err)
	}
	if err != nil {
		t.Skip("skipped: promtool not installed (Debian's prometheus package; make deps installs it):", err)
	}
	for _, args := range [][]string{{"check", "rules", "veneer-rules.yaml"}, {"test", "rules", "veneer-rules_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
