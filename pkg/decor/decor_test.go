package decor_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/datapath/exchange"
	"github.com/veneermesh/veneer/pkg/decor"
	_ "github.com/veneermesh/veneer/pkg/decor/all"
	"github.com/veneermesh/veneer/pkg/decor/tap"
)

// probe records its hooks' calls in a shared log and decides v.
type probe struct {
	name string
	log  *[]string
	v    exchange.Verdict
}

func (p *probe) Name() string { return p.name }
func (p *probe) Request(*exchange.Exchange) exchange.Verdict {
	*p.log = append(*p.log, p.name+".req")
	return p.v
}
func (p *probe) Response(*exchange.Exchange) { *p.log = append(*p.log, p.name+".resp") }
func (p *probe) Done(*exchange.Exchange)     { *p.log = append(*p.log, p.name+".done") }

// observer has only a Done hook.
type observer struct{ log *[]string }

func (o observer) Name() string            { return "obs" }
func (o observer) Done(*exchange.Exchange) { *o.log = append(*o.log, "obs.done") }

func TestChainHooks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stopAt  int // which probe answers; -1 none
		delayAt int // which probe only delays; -1 none
		want    string
	}{
		{"all go on", -1, -1, "a.req b.req c.req | c.resp b.resp a.resp | c.done b.done a.done obs.done"},
		{"b answers", 1, -1, "a.req b.req | a.resp | a.done obs.done"},
		{"b delays, then all go on", -1, 1, "a.req b.req (wait) c.req | c.resp b.resp a.resp | c.done b.done a.done obs.done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			ps := []*probe{{name: "a", log: &log}, {name: "b", log: &log}, {name: "c", log: &log}}
			if tc.stopAt >= 0 {
				ps[tc.stopAt].v = exchange.Verdict{Status: 403}
			}
			if tc.delayAt >= 0 {
				ps[tc.delayAt].v = exchange.Verdict{Delay: time.Millisecond}
			}
			c, err := decor.NewChain(1, observer{&log}, ps[0], ps[1], ps[2])
			if err != nil {
				t.Fatal(err)
			}
			x := &exchange.Exchange{}
			at, v := c.Request(x, 0)
			for v.Delay > 0 && v.Status == 0 {
				log = append(log, "(wait)")
				at, v = c.Request(x, at+1)
			}
			log = append(log, "|")
			c.Response(x, at)
			log = append(log, "|")
			c.Done(x, at)
			if got := strings.Join(log, " "); got != tc.want {
				t.Errorf("hooks ran: %s\nwant:      %s", got, tc.want)
			}
		})
	}
}

func TestObserversMayNotAnswer(t *testing.T) {
	var log []string
	if _, err := decor.NewChain(1, &probe{name: "a", log: &log}); err == nil {
		t.Error("an observer with a Request hook: accepted; want an error")
	}
}

// The order is the documented one, whatever order a config lists blocks in.
func TestBuildOrder(t *testing.T) {
	cfg, err := config.Parse([]byte(`
default:
  http:
    forwarded: true
    headers: {request: {set: {x-a: b}}}
    circuitBreaker: {maxRequests: 5}
    fault: {abort: {status: 503, percent: 1}}
    rateLimit: {requestsPerSecond: 5}
    authz: {rules: [{action: deny, paths: [/x]}]}
    requestId: true
`), decor.Schema())
	if err != nil {
		t.Fatal(err)
	}
	shared := decor.NewShared()
	tap.Provide(shared, tap.New())
	c, err := decor.Build(cfg.Default.HTTP, decor.Deps{Access: io.Discard, Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"accessLog", "metrics", "stats", "tap", "requestId", "authz", "rateLimit", "fault", "circuitBreaker", "headers", "forwarded"}
	if !slices.Equal(c.Names(), want) {
		t.Errorf("chain %v; want %v", c.Names(), want)
	}
	if c.Observers() != 4 {
		t.Errorf("observers %d; want 4 (access log, metrics, stats, tap)", c.Observers())
	}
	x := &exchange.Exchange{Method: "GET", Path: "/x", Request: http.Header{}, Response: http.Header{}}
	if at, v := c.Request(x, 0); v.Status != http.StatusForbidden || c.Names()[at] != "authz" {
		t.Errorf("GET /x: %d from %s; want 403 from authz", v.Status, c.Names()[at])
	}
}
