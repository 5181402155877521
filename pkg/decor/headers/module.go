package headers

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Block},
		New: decor.Block(Key, func(c Config, _ decor.Deps) (decor.Decoration, error) { return New(c), nil })})
}

// Its hooks, checked by the compiler.
var (
	_ decor.Requester = (*Headers)(nil)
	_ decor.Responder = (*Headers)(nil)
)
