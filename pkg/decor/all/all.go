// Package all links every decoration into a binary: each registers its
// module in its init (CoreDNS's plugins do the same), and decor.Order says
// where each runs. The agent imports it; so do tests that build chains.
package all

import (
	_ "github.com/veneermesh/veneer/pkg/decor/accesslog"
	_ "github.com/veneermesh/veneer/pkg/decor/authz"
	_ "github.com/veneermesh/veneer/pkg/decor/circuit"
	_ "github.com/veneermesh/veneer/pkg/decor/errorpage"
	_ "github.com/veneermesh/veneer/pkg/decor/fault"
	_ "github.com/veneermesh/veneer/pkg/decor/forwarded"
	_ "github.com/veneermesh/veneer/pkg/decor/headers"
	_ "github.com/veneermesh/veneer/pkg/decor/metrics"
	_ "github.com/veneermesh/veneer/pkg/decor/ratelimit"
	_ "github.com/veneermesh/veneer/pkg/decor/requestid"
	_ "github.com/veneermesh/veneer/pkg/decor/retry"
	_ "github.com/veneermesh/veneer/pkg/decor/stats"
	_ "github.com/veneermesh/veneer/pkg/decor/tap"
	_ "github.com/veneermesh/veneer/pkg/decor/timeout"
)
