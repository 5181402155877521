package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/loophole"
)

// newUIDProcesses registers the gauge watchLoopholes sets.
func newUIDProcesses(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "veneer_proxy_uid_processes",
		Help: "Other processes of the pod running as the agent's UID: they bypass outbound capture (0 where the agent cannot see the pod's processes).",
	})
	reg.MustRegister(g)
	return g
}

// watchLoopholes warns, at start and every 30s, about other processes of the
// pod running as the agent's UID: outbound capture cannot see them.
func watchLoopholes(ctx context.Context, g prometheus.Gauge, log zerolog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		procs := loophole.Scan("/proc")
		g.Set(float64(len(procs)))
		for _, p := range procs {
			log.Warn().Int("pid", p.PID).Str("process", p.Name).
				Msg("another process of the pod runs as the agent's UID: its outgoing connections bypass capture")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
