package circuit

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Block},
		New: decor.Block(Key, func(c Config, d decor.Deps) (decor.Decoration, error) {
			// The requests in flight outlive a reload, whatever its maximum.
			get := decor.Owned(d, Key, c, func(c Config) *Breaker { return New(c.MaxRequests) },
				func(b *Breaker, c Config) bool { b.SetMax(c.MaxRequests); return true })
			return For(get), nil
		})})
}

// Its hooks, checked by the compiler.
var (
	_ decor.Requester = (*Decoration)(nil)
	_ decor.Finisher  = (*Decoration)(nil)
)
