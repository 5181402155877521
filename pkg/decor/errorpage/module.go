package errorpage

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Block},
		New: decor.Block(Key, func(c Config, _ decor.Deps) (decor.Decoration, error) {
			p, err := New(c)
			if err != nil {
				return nil, err
			}
			return p, nil
		})})
}

// Its hooks, checked by the compiler.
var _ decor.Responder = (*Pages)(nil)
