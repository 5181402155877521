package ratelimit

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Block},
		New: decor.Block(Key, func(c Config, d decor.Deps) (decor.Decoration, error) {
			return For(decor.Owned(d, Key, c, New, nil)), nil // the buckets outlive a reload that keeps the limit
		})})
}

// Its hooks, checked by the compiler.
var _ decor.Requester = (*Decoration)(nil)
