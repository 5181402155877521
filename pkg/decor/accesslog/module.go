package accesslog

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Block}, Observer: true,
		New: decor.Block(Key, func(c Config, d decor.Deps) (decor.Decoration, error) {
			if c.Off {
				return nil, nil
			}
			return New(c, d.Access), nil
		})})
}

// Its hooks, checked by the compiler.
var _ decor.Finisher = (*Log)(nil)
