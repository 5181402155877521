package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's TCP metrics, labelled by original destination port.
type metrics struct {
	opened, closed, received, sent *prometheus.CounterVec
	active                         *prometheus.GaugeVec
	ports                          sync.Map // uint16 -> *portMetrics, resolved once per port
}

// portMetrics are the label handles of one port, so that a connection costs
// no label lookup.
type portMetrics struct {
	opened, closed, received, sent prometheus.Counter
	active                         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	label := []string{"port"}
	m := &metrics{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_connections_opened_total",
			Help: "Captured TCP connections accepted, by original destination port.",
		}, label),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_connections_closed_total",
			Help: "Captured TCP connections closed, by original destination port.",
		}, label),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_received_bytes_total",
			Help: "Bytes received from clients and forwarded to the app, by original destination port.",
		}, label),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_sent_bytes_total",
			Help: "Bytes received from the app and sent to clients, by original destination port.",
		}, label),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veneer_tcp_active_connections",
			Help: "Captured TCP connections open now, by original destination port.",
		}, label),
	}
	for _, c := range []prometheus.Collector{m.opened, m.closed, m.received, m.sent, m.active} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) port(p uint16) *portMetrics {
	if pm, ok := m.ports.Load(p); ok {
		return pm.(*portMetrics)
	}
	l := strconv.Itoa(int(p))
	pm, _ := m.ports.LoadOrStore(p, &portMetrics{
		opened:   m.opened.WithLabelValues(l),
		closed:   m.closed.WithLabelValues(l),
		received: m.received.WithLabelValues(l),
		sent:     m.sent.WithLabelValues(l),
		active:   m.active.WithLabelValues(l),
	})
	return pm.(*portMetrics)
}
