package decor

// Order is every decoration, by its module's name, outermost first: as
// CoreDNS's plugin.cfg, the one list that says where each runs. Adding one
// is a package (its Module, registered in its init), a line in
// pkg/decor/all, and its name here. Why this order:
//
//  1. access log, metrics, stats, tap: they observe every exchange, the
//     agent's own answers included, and how long the whole chain took;
//  2. request id and trace context: so that even a denied or limited
//     request has an id in its access log line and its response;
//  3. authorization: denied traffic costs nothing further, not even a token;
//  4. rate limit: before any work is done for the request;
//  5. fault injection: in the app's place, after the request was admitted;
//  6. circuit breaker: counts only requests that will reach the app;
//  7. error pages: replace what the app (or the forwarder) answered;
//  8. headers, then forwarded: the app sees the headers as the operator
//     set them, plus the client's address.
//
// After the last comes the forwarder, with the request timeout and retries:
// Forwarder's blocks.
var Order = []string{
	"accessLog",
	"metrics",
	"stats",
	"tap",
	"requestId",
	"authz",
	"rateLimit",
	"fault",
	"circuitBreaker",
	"errorPages",
	"headers",
	"forwarded",
}

// Forwarder is the blocks the forwarder reads after the chain, in the order
// the config's errors list them (pkg/decor/timeout and retry register
// them: blocks, not decorations).
var Forwarder = []string{"timeouts", "retries"}
