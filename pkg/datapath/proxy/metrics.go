package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ActiveName is the name of the gauge of open connections, for what reads
// it back (the admin page's charts).
const ActiveName = "veneer_tcp_active_connections"

// Metrics are the agent's TCP metrics, labelled by direction (inbound,
// outbound) and original destination port. One set serves every listener.
type Metrics struct {
	opened, closed, received, sent *prometheus.CounterVec
	active                         *prometheus.GaugeVec
	rejected                       *prometheus.CounterVec
	handshakes                     *prometheus.CounterVec // mTLS handshakes completed, by direction and whether resumed
	ports                          sync.Map               // portKey -> *portMetrics, resolved once per port
}

type portKey struct {
	direction string
	port      uint16
}

// portMetrics are the label handles of one port, so that a connection costs
// no label lookup.
type portMetrics struct {
	opened, received, sent prometheus.Counter
	closed                 [2]prometheus.Counter // plaintext, mTLS
	active                 prometheus.Gauge
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// NewMetrics registers the TCP metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	label := []string{"direction", "port"}
	m := &Metrics{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_connections_opened_total",
			Help: "Captured TCP connections accepted, by direction and original destination port.",
		}, label),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_connections_closed_total",
			Help: "Captured TCP connections closed, by original destination port, and whether they were veneer's mTLS (tls).",
		}, append(label, "tls")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_received_bytes_total",
			Help: "Bytes received from clients and forwarded to the app, by original destination port.",
		}, label),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veneer_tcp_sent_bytes_total",
			Help: "Bytes received from the app and sent to clients, by original destination port.",
		}, label),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ActiveName,
			Help: "Captured TCP connections open now, by original destination port.",
		}, label),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veneer_tcp_connections_rejected_total",
		Help: "Connections reset at once because --max-connections were open.",
	}, []string{"direction"})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veneer_mtls_handshakes_total",
		Help: "mTLS handshakes completed with meshed peers, by direction and whether the session was resumed (resumed ones are verified all the same).",
	}, []string{"direction", "resumed"})
	for _, c := range []prometheus.Collector{m.opened, m.closed, m.received, m.sent, m.active, m.rejected, m.handshakes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) port(direction string, p uint16) *portMetrics {
	k := portKey{direction, p}
	if pm, ok := m.ports.Load(k); ok {
		return pm.(*portMetrics)
	}
	l := strconv.Itoa(int(p))
	pm, _ := m.ports.LoadOrStore(k, &portMetrics{
		opened:   m.opened.WithLabelValues(direction, l),
		closed:   [2]prometheus.Counter{m.closed.WithLabelValues(direction, l, "false"), m.closed.WithLabelValues(direction, l, "true")},
		received: m.received.WithLabelValues(direction, l),
		sent:     m.sent.WithLabelValues(direction, l),
		active:   m.active.WithLabelValues(direction, l),
	})
	return pm.(*portMetrics)
}
