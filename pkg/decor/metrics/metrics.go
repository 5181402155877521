// Package metrics is the agent's HTTP metrics, in Prometheus form:
//
//	veneer_requests_total{direction,port,method,code,flags,tls}
//	veneer_request_duration_seconds{direction,port}   buckets from 100us, so sub-millisecond times resolve
//	veneer_request_size_bytes{direction,port}         request bodies
//	veneer_response_size_bytes{direction,port}        response bodies
//
//	metrics: true   # the default
//
// Label values are resolved once per port and per (method, code, flags)
// combination and kept, so a request costs no label lookup. Methods outside
// the standard set count as OTHER, so a client cannot grow the label space.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
)

// Key is the switch's key in an http section, for the metrics and the
// per-path profiler (pkg/decor/stats); left out of a port's section, it is
// on.
const Key = "metrics"

// Switch is the kind of the switch.
var Switch = config.Switch(Key, true)

// The metrics' names, for what reads them back (the admin page's charts).
const (
	RequestsName     = "veneer_requests_total"
	DurationName     = "veneer_request_duration_seconds"
	RequestSizeName  = "veneer_request_size_bytes"
	ResponseSizeName = "veneer_response_size_bytes"
)

// Metrics are registered once and shared by every chain.
type Metrics struct {
	requests                  *prometheus.CounterVec
	duration, reqSize, rsSize *prometheus.HistogramVec
	ports                     sync.Map // portKey -> *port
}

type portKey struct {
	direction string
	port      uint16
}

type port struct {
	direction, label          string
	duration, reqSize, rsSize prometheus.Observer
	counters                  sync.Map // key -> prometheus.Counter
}

type key struct {
	method string
	code   int
	flags  exchange.Flag
	tls    bool
}

// New registers the metrics on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	sizes := prometheus.ExponentialBuckets(64, 4, 10) // 64 B to 16 MiB
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsName,
			Help: "HTTP requests, by original destination port, method, status code, response flags and whether they came or went over veneer's mTLS (tls).",
		}, []string{"direction", "port", "method", "code", "flags", "tls"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    DurationName,
			Help:    "Time from the request's arrival to the end of its response.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"direction", "port"}),
		reqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RequestSizeName, Help: "Request body sizes.", Buckets: sizes,
		}, []string{"direction", "port"}),
		rsSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ResponseSizeName, Help: "Response body sizes.", Buckets: sizes,
		}, []string{"direction", "port"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.reqSize, m.rsSize} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) port(direction string, p uint16) *port {
	if direction == "" {
		direction = "inbound"
	}
	k := portKey{direction, p}
	if v, ok := m.ports.Load(k); ok {
		return v.(*port)
	}
	l := strconv.Itoa(int(p))
	v, _ := m.ports.LoadOrStore(k, &port{
		direction: direction,
		label:     l,
		duration:  m.duration.WithLabelValues(direction, l),
		reqSize:   m.reqSize.WithLabelValues(direction, l),
		rsSize:    m.rsSize.WithLabelValues(direction, l),
	})
	return v.(*port)
}

// Name is the config key.
func (m *Metrics) Name() string { return Key }

// Done records one finished exchange.
func (m *Metrics) Done(ex *exchange.Exchange) {
	p := m.port(ex.Direction, ex.Port)
	status, sent := ex.Status, ex.Sent
	k := key{method: Method(ex.Method), code: status, flags: ex.Flags(), tls: ex.TLS}
	c, ok := p.counters.Load(k)
	if !ok {
		c, _ = p.counters.LoadOrStore(k, m.requests.WithLabelValues(p.direction, p.label, k.method, strconv.Itoa(status), k.flags.String(), strconv.FormatBool(k.tls)))
	}
	c.(prometheus.Counter).Inc()
	p.duration.Observe(time.Since(ex.Start).Seconds())
	p.reqSize.Observe(float64(ex.Received()))
	p.rsSize.Observe(float64(sent))
}

// Method is m if it is a standard method, else OTHER.
func Method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI":
		return m
	}
	return "OTHER"
}
