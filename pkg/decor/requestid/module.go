package requestid

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

// ProvideSpans makes spans where sampled requests' spans go (the agent's
// OTLP exporter). Without it, tracing propagates context and records none.
func ProvideSpans(s *decor.Shared, spans Spans) { decor.Provide(s, "spans", spans) }

func init() {
	decor.Register(decor.Module{Name: KeyRequestID, Kinds: []config.Kind{Switch, TracingSwitch},
		New: func(h config.HTTP, d decor.Deps) (decor.Decoration, error) {
			ids, trace := config.On(h, KeyRequestID), config.On(h, KeyTracing)
			if spans, ok := decor.Lookup[Spans](d.Shared, "spans"); trace && ok {
				return NewTraced(ids, spans), nil
			}
			if !ids && !trace {
				return nil, nil
			}
			return New(ids, trace), nil
		}})
}

// Its hooks, checked by the compiler.
var (
	_ decor.Requester = (*IDs)(nil)
	_ decor.Responder = (*IDs)(nil)
	_ decor.Finisher  = (*Traced)(nil)
)
