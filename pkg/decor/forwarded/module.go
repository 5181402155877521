package forwarded

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

func init() {
	decor.Register(decor.Module{Name: Key, Kinds: []config.Kind{Switch},
		New: decor.Switched(Key, func(decor.Deps) (decor.Decoration, error) { return Forwarded{}, nil })})
}

// Its hooks, checked by the compiler.
var _ decor.Requester = Forwarded{}
