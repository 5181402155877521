package stats

import (
	"github.com/veneermesh/veneer/pkg/decor"
	"github.com/veneermesh/veneer/pkg/decor/metrics"
)

// Name is the profiler's module name.
const Name = "stats"

// Of is the agent's profiler, bounded to maxPaths the first time (a reload
// keeps the first bound): the one the chains feed and the admin endpoint
// serves.
func Of(s *decor.Shared, maxPaths int) *Stats {
	st, _ := decor.Once(s, Name, func() (*Stats, error) { return New(maxPaths), nil })
	return st
}

func init() {
	decor.Register(decor.Module{Name: Name, Observer: true, // on with the metrics switch, which metrics' module owns
		New: decor.Switched(metrics.Key, func(d decor.Deps) (decor.Decoration, error) { return Of(d.Shared, d.Stats.MaxPaths), nil })})
}

// Its hooks, checked by the compiler.
var _ decor.Finisher = (*Stats)(nil)
