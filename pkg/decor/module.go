package decor

import (
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veneermesh/veneer/pkg/agent/config"
)

// Module is a decoration as the chain knows it, declared by its own
// package (Register, in its init): its name, which is its place in Order,
// the config blocks it reads (their kinds decode and check them when the
// config loads), whether it observes every exchange, and how it is made
// for a route. New returns a nil Decoration when the route has it off.
type Module struct {
	Name     string
	Kinds    []config.Kind
	Observer bool        // it sees every exchange, those refused before the chain too (the access log, the metrics)
	TCP      config.Kind // the block it reads in a port's tcp section, if any (authz)
	New      func(h config.HTTP, d Deps) (Decoration, error)
}

// Deps are what the decorations share with the rest of the agent. Nothing
// in them is of one decoration's type: what a decoration needs from the
// agent (the admin page's tap, the OTLP exporter) or keeps across builds
// (the metrics registered once, a rate limit's buckets) is in Shared.
type Deps struct {
	Access   io.Writer             // where the access log's lines go, one Write each
	Registry prometheus.Registerer // where decorations register their metrics, once for the agent
	Stats    config.Stats          // the config's stats section
	Shared   *Shared
	// Owner names who owns the state of block key on the route being
	// built: its port's section, or the route itself when it sets key.
	// Shared's values are kept by owner. Nil: the route's section is
	// "route".
	Owner func(key string) string
}

var (
	mu      sync.Mutex
	modules = map[string]Module{}
	// blocks are config blocks no decoration reads: the forwarder's
	// (timeouts, retries), which pkg/datapath/httpproxy reads.
	blocks []config.Kind
)

// Register adds a decoration's module; each decoration's package calls it
// in its init, and pkg/decor/all links them all in.
func Register(m Module) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := modules[m.Name]; dup {
		panic("decor: module " + m.Name + " registered twice")
	}
	modules[m.Name] = m
}

// RegisterBlocks adds config blocks that are not a decoration's: the
// forwarder's, so that the schema decodes them.
func RegisterBlocks(ks ...config.Kind) {
	mu.Lock()
	defer mu.Unlock()
	blocks = append(blocks, ks...)
}

// ordered is every module in Order, checked against what registered: a
// module that registered and is not in Order, or a name in Order that
// did not register (its package not linked), is an error; so are
// observers after decorations that are not.
func ordered() ([]Module, error) {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Module, 0, len(Order))
	for i, name := range Order {
		m, ok := modules[name]
		if !ok {
			return nil, fmt.Errorf("decor: no module %q registered (is pkg/decor/all linked in?)", name)
		}
		if m.Observer && i > 0 && !out[i-1].Observer {
			return nil, fmt.Errorf("decor: observer %q comes after %q, which is not one", name, out[i-1].Name)
		}
		out = append(out, m)
	}
	for name := range modules {
		if !slices.Contains(Order, name) {
			return nil, fmt.Errorf("decor: module %q registered but not in Order", name)
		}
	}
	return out, nil
}

// forwarder is the registered blocks in Forwarder's order, checked as
// ordered checks the modules.
func forwarder() ([]config.Kind, error) {
	mu.Lock()
	defer mu.Unlock()
	var out []config.Kind
	for _, name := range Forwarder {
		i := slices.IndexFunc(blocks, func(k config.Kind) bool { return k.Key == name })
		if i < 0 {
			return nil, fmt.Errorf("decor: no block %q registered (is pkg/decor/all linked in?)", name)
		}
		out = append(out, blocks[i])
	}
	if len(out) != len(blocks) {
		return nil, fmt.Errorf("decor: %d blocks registered, %d in Forwarder", len(blocks), len(out))
	}
	return out, nil
}

// Schema hands the config's blocks to the modules that own them: every
// block a module of Order or the forwarder reads, and the TCP
// authorization's. It panics when the modules do not match Order: a
// build that links the wrong decorations.
func Schema() config.Schema {
	ms, err := ordered()
	if err != nil {
		panic(err)
	}
	var s config.Schema
	for _, m := range ms {
		s.HTTP = append(s.HTTP, m.Kinds...)
		if m.TCP.Key != "" {
			s.TCPAuthz = m.TCP
		}
	}
	fw, err := forwarder()
	if err != nil {
		panic(err)
	}
	s.HTTP = append(s.HTTP, fw...)
	// metrics and stats share their switch
	s.HTTP = slices.CompactFunc(s.HTTP, func(a, b config.Kind) bool { return a.Key == b.Key })
	return s
}

// Build is the chain of a route's settings h.
func Build(h config.HTTP, d Deps) (*Chain, error) {
	ms, err := ordered()
	if err != nil {
		return nil, err
	}
	if d.Shared == nil {
		d.Shared = NewShared()
	}
	if d.Owner == nil {
		d.Owner = func(string) string { return "route" }
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	var ds []Decoration
	observe := 0
	for _, m := range ms {
		dec, err := m.New(h, d)
		if err != nil {
			return nil, err
		}
		if dec == nil {
			continue
		}
		ds = append(ds, dec)
		if m.Observer {
			observe++
		}
	}
	return NewChain(observe, ds...)
}

// Block is the New of a module that reads one block of config C: made by
// build when the route has the block, off otherwise.
func Block[C any](key string, build func(C, Deps) (Decoration, error)) func(config.HTTP, Deps) (Decoration, error) {
	return func(h config.HTTP, d Deps) (Decoration, error) {
		c, ok := config.Get[C](h, key)
		if !ok {
			return nil, nil
		}
		return build(c, d)
	}
}

// Switched is the New of a module turned on by a switch: made by build
// when the route has the switch on.
func Switched(key string, build func(Deps) (Decoration, error)) func(config.HTTP, Deps) (Decoration, error) {
	return func(h config.HTTP, d Deps) (Decoration, error) {
		if !config.On(h, key) {
			return nil, nil
		}
		return build(d)
	}
}
