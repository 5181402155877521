package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

// Of is the agent's HTTP metrics, registered on reg the first time: one
// set for every chain and server of the agent.
func Of(s *decor.Shared, reg prometheus.Registerer) (*Metrics, error) {
	return decor.Once(s, Key, func() (*Metrics, error) { return New(reg) })
}

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Switch}, Observer: true,
		New: decor.Switched(Key, func(d decor.Deps) (decor.Decoration, error) {
			m, err := Of(d.Shared, d.Registry)
			if err != nil {
				return nil, fmt.Errorf("registering HTTP metrics: %w", err)
			}
			return m, nil
		})})
}

// Its hooks, checked by the compiler.
var _ decor.Finisher = (*Metrics)(nil)
