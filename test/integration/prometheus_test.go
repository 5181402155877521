//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

// Debian's prometheus scrapes the agent in a local pod with the job users
// copy (deploy/monitoring/prometheus.yaml), its Kubernetes discovery
// replaced by a file of the targets it would find, and every PromQL query
// of the Grafana dashboard returns series after traffic: a metric renamed
// without the dashboard fails here. The recording rules of
// deploy/monitoring/veneer-rules.yaml run on the same series.
func TestPrometheusScrapesTheAgent(t *testing.T) {
	t.Parallel()
	requireTool(t, "prometheus")
	p := newPod(t)
	p.startApp("")
	p.mustInit("--inbound-ports", "8080")
	p.startAgent("--config", p.writeConfig("default: {protocol: http}\nports: {\"8080\": {protocol: http, routes: [{prefix: /chaos, fault: {abort: {status: 503, percent: 100}}}]}}\n"))

	dir := t.TempDir()
	// What Kubernetes' pod discovery gives for the agent's admin port of a
	// pod that veneerctl inject annotated, and for the app's port.
	meta := func(container, portName, port string) map[string]any {
		return map[string]any{
			"targets": []string{localpod.PodIP.String() + ":" + port},
			"labels": map[string]string{
				"__meta_kubernetes_namespace":                           "shop",
				"__meta_kubernetes_pod_name":                            "python-1",
				"__meta_kubernetes_pod_ip":                              localpod.PodIP.String(),
				"__meta_kubernetes_pod_container_name":                  container,
				"__meta_kubernetes_pod_container_port_name":             portName,
				"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
				"__meta_kubernetes_pod_annotation_prometheus_io_port":   "15000",
				"__meta_kubernetes_pod_annotation_prometheus_io_path":   "/metrics",
			},
		}
	}
	targets, _ := json.Marshal([]any{meta("veneer-agent", "veneer-admin", "15000"), meta("python", "http", "8080")})
	if err := os.WriteFile(filepath.Join(dir, "targets.json"), targets, 0o644); err != nil {
		t.Fatal(err)
	}

	var cfg map[string]any
	b, err := os.ReadFile("../../deploy/monitoring/prometheus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	job := cfg["scrape_configs"].([]any)[0].(map[string]any)
	delete(job, "kubernetes_sd_configs")
	job["file_sd_configs"] = []any{map[string]any{"files": []string{filepath.Join(dir, "targets.json")}, "refresh_interval": "1s"}}
	job["scrape_interval"] = "1s"
	rules, _ := filepath.Abs("../../deploy/monitoring/veneer-rules.yaml")
	cfg["rule_files"] = []string{rules}
	cfg["global"] = map[string]any{"evaluation_interval": "1s"}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}

	prom := exec.Command("prometheus", "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", "127.0.0.1:19090")
	var promLog logBuffer
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := p.Pod.Client.Start(prom, 0); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		prom.Process.Kill()
		prom.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", promLog.String())
		}
	})
	c := p.client(p.Pod.Client)
	query := func(q string) (int, error) {
		resp, err := c.Get("http://127.0.0.1:19090/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status, Error string
			Data          struct{ Result []json.RawMessage }
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}

	// Only the agent's admin port was scraped, with the dashboard's labels.
	p.waitFor("the agent scraped as up", func() bool {
		n, err := query(`up{job="veneer-agents",namespace="shop",pod="python-1",container="veneer-agent"} == 1`)
		return err == nil && n == 1
	})
	if n, err := query(`up`); err != nil || n != 1 {
		t.Errorf("%d targets up (%v); want the agent's admin port only", n, err)
	}

	// Traffic through the capture for a while: 200s, and 503s with a flag.
	stop := time.Now().Add(4 * time.Second)
	for time.Now().Before(stop) {
		p.getPath(8080, "/")
		p.getPath(8080, "/chaos")
		time.Sleep(50 * time.Millisecond)
	}

	// The recording rules users load, evaluated over the same series.
	queries := append(dashboardQueries(t), `veneer:requests:rate5m{pod="python-1",direction="inbound",port="8080"}`,
		`veneer:requests_5xx:ratio_rate5m > 0`, `veneer:requests_within_250ms:ratio_rate5m`)
	vars := strings.NewReplacer(`$__rate_interval`, "30s", `$pod`, ".+")
	for _, q := range queries {
		q = vars.Replace(q)
		var n int
		var err error
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if n, err = query(q); err == nil && n > 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil || n == 0 {
			t.Errorf("dashboard query %s: %d series (%v); want some", q, n, err)
		}
	}
}

var labelValues = regexp.MustCompile(`^label_values\((\w+), *\w+\)$`)

// dashboardQueries is every PromQL expression of the Grafana dashboard,
// the pod variable's query as the metric it lists.
func dashboardQueries(t *testing.T) []string {
	b, err := os.ReadFile("../../deploy/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d any
	json.Unmarshal(b, &d)
	var qs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					qs = append(qs, s)
				} else if ok && k == "query" {
					if m := labelValues.FindStringSubmatch(s); m != nil {
						qs = append(qs, m[1])
					}
				} else {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d)
	if len(qs) < 5 {
		t.Fatalf("found %d queries in the dashboard", len(qs))
	}
	return qs
}
