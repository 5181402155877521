package inject

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/veneermesh/veneer/pkg/kube/appprobe"
)

const strictDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {veneer.dev/mtls: strict, veneer.dev/outbound: "true"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: app:1
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: http, httpHeaders: [{name: X-Probe, value: "1"}]}}
        livenessProbe: {tcpSocket: {port: 8080}}
        startupProbe: {exec: {command: ["true"]}}
`

func TestInjectMTLSStrict(t *testing.T) {
	out, err := Inject([]byte(strictDeployment), Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := podSpecOf(t, string(out))
	agent, app, init := find(spec.InitContainers, AgentName), find(spec.Containers, "app"), find(spec.InitContainers, InitName)
	if !strings.Contains(strings.Join(init.Args, " "), "--outbound") {
		t.Errorf("veneer-init args %v; want --outbound", init.Args)
	}
	if !strings.Contains(strings.Join(agent.Args, " "), "--mtls strict") {
		t.Errorf("agent args %v; want --mtls strict", agent.Args)
	}
	env := map[string]string{}
	for _, e := range agent.Env {
		env[e.Name] = e.Value
	}
	if env["SPIFFE_ENDPOINT_SOCKET"] != "unix:///spiffe-workload-api/spire-agent.sock" {
		t.Errorf("SPIFFE_ENDPOINT_SOCKET = %q", env["SPIFFE_ENDPOINT_SOCKET"])
	}
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == SPIFFEVolume })
	if i < 0 {
		t.Fatalf("no %s volume: %+v", SPIFFEVolume, spec.Volumes)
	}
	if v := spec.Volumes[i]; v.CSI == nil || v.CSI.Driver != "csi.spiffe.io" || !*v.CSI.ReadOnly {
		t.Errorf("volume %+v; want the SPIFFE CSI driver's, read-only", v)
	}
	if m := agent.VolumeMounts[len(agent.VolumeMounts)-1]; m.Name != SPIFFEVolume || m.MountPath != "/spiffe-workload-api" || !m.ReadOnly {
		t.Errorf("agent mount %+v", m)
	}
	if !strings.Contains(string(out), "veneer.dev/mtls: strict\n") {
		t.Error("no veneer.dev/mtls label on the pod for the ClusterSPIFFEID")
	}
	// The probes: at the agent's admin port, the originals in its env.
	if p := app.ReadinessProbe.HTTPGet; p == nil || p.Path != "/app-health/app/readyz" || p.Port.IntValue() != AdminPort {
		t.Errorf("readiness probe %+v; want the agent's /app-health/app/readyz", app.ReadinessProbe)
	}
	if p := app.LivenessProbe.HTTPGet; p == nil || p.Path != "/app-health/app/livez" {
		t.Errorf("liveness probe %+v", app.LivenessProbe)
	}
	if app.StartupProbe.Exec == nil {
		t.Errorf("an exec probe was moved: %+v", app.StartupProbe)
	}
	probes, err := appprobe.Parse(env["VENEER_APP_PROBES"])
	if err != nil {
		t.Fatal(err)
	}
	if r := probes["/app-health/app/readyz"].HTTPGet; r == nil || r.Port != 8080 || r.Path != "/ready" || r.Headers[0].Name != "X-Probe" {
		t.Errorf("the readiness probe handed to the agent: %+v", r)
	}
	if l := probes["/app-health/app/livez"].TCPSocket; l == nil || l.Port != 8080 {
		t.Errorf("the liveness probe handed to the agent: %+v", l)
	}

	reversible(t, strictDeployment, out)

	// Permissive: the identity, and the probes left alone.
	perm, err := Inject([]byte(strings.Replace(strictDeployment, "mtls: strict", "mtls: permissive", 1)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ = podSpecOf(t, string(perm))
	if find(spec.Containers, "app").ReadinessProbe.HTTPGet.Path != "/ready" || strings.Contains(string(perm), "VENEER_APP_PROBES") {
		t.Error("permissive moved the probes")
	}
}

func TestInjectMTLSErrors(t *testing.T) {
	for in, want := range map[string]string{
		strings.Replace(strictDeployment, "mtls: strict", "mtls: always", 1):                  `metadata.annotations[veneer.dev/mtls]: "always" is not an mTLS mode (off, permissive or strict)`,
		strings.Replace(strictDeployment, `outbound: "true"`, `outbound: "yes!"`, 1):          `metadata.annotations[veneer.dev/outbound]: "yes!" is not true or false`,
		strings.Replace(strictDeployment, "port: http,", "port: web,", 1):                     `httpGet probe: port "web" is not the name of one of the container's ports`,
		strings.Replace(strictDeployment, "tcpSocket: {port: 8080}", "grpc: {port: 9000}", 1): "a grpc probe (port 9000) would be refused by a strict mTLS port",
	} {
		if _, err := Inject([]byte(in), Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("inject: %v; want an error with %q", err, want)
		}
	}
}
