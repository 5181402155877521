package retry

import "github.com/veneermesh/veneer/pkg/decor"

// The forwarder reads this block (pkg/datapath/httpproxy); no decoration
// does, so it registers as a block alone.
func init() { decor.RegisterBlocks(Block) }
