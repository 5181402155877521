package tap

import (
	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/decor"
)

// Name is the tap's module name.
const Name = "tap"

// Provide makes t the agent's tap (the admin page's): every chain feeds it.
// Without one, no chain has a tap.
func Provide(s *decor.Shared, t *Tap) { decor.Provide(s, Name, t) }

func init() {
	decor.Register(decor.Module{Name: Name, Observer: true, // no config: there whenever the agent provides one
		New: func(_ config.HTTP, d decor.Deps) (decor.Decoration, error) {
			if t, ok := decor.Lookup[*Tap](d.Shared, Name); ok && t != nil {
				return t, nil
			}
			return nil, nil
		}})
}

// Its hooks, checked by the compiler.
var _ decor.Finisher = (*Tap)(nil)
