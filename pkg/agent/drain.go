package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/admin"
)

// drainPoll is how often the drain looks whether the sides have gone quiet.
const drainPoll = 50 * time.Millisecond

// letClientsGo is the pod's preStop hook (veneer-agent prestop, POST
// /prestop on --admin-local): the pod is terminating and leaves its
// Services' endpoints. /ready turns 503 and every HTTP response closes its
// connection from now on, so that clients on kept connections reconnect,
// through the Service, to the pods that stay. Unlike a drain the agent
// keeps accepting and serving: a native sidecar gets SIGTERM only after
// the app has exited, and until then the app, and clients that have not
// yet seen the endpoints change, still need it.
func letClientsGo(api *admin.Admin, sides []*side, log zerolog.Logger) {
	log.Info().Msg("pod terminating (preStop): closing kept connections after their next response; serving until SIGTERM")
	api.SetReady(false)
	for _, sd := range sides {
		sd.http.StartDrain()
	}
}

// drain stops the agent without dropping a connection it could still serve.
// /ready turns 503 first. Then three phases share o.DrainTimeout:
//
//  1. Keep accepting until no connection came for o.DrainQuiet: a
//     terminating pod still gets new connections until every node has
//     noticed it left the Service's endpoints. Every HTTP response says
//     "Connection: close" from now on, so clients move on. For half the
//     timeout at most: the rest is for the requests still in flight once
//     accepting stops. Skipped when accept is false: a server or loop that
//     failed is no reason to wait.
//  2. Stop accepting, and let what was accepted reach the HTTP server before
//     it stops taking connections.
//  3. Let the open connections finish in what is left of the timeout, then
//     close those still open.
func drain(api *admin.Admin, sides []*side, o Options, accept bool, log zerolog.Logger) {
	api.SetReady(false)
	log.Info().Dur("drain_timeout", o.DrainTimeout).Msg("draining")
	ctx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	for _, sd := range sides {
		sd.http.StartDrain()
	}
	acceptUntil := time.Now().Add(o.DrainTimeout / 2)
	if accept {
		acceptUntilQuiet(sides, o.DrainQuiet, acceptUntil)
	}
	for _, sd := range sides {
		sd.proxy.StopAccepting()
	}
	if !shutdown(ctx, sides) {
		log.Warn().Msg("drain timed out; closed the connections still open")
	}
}

// acceptUntilQuiet returns once no side accepted a connection for quiet,
// or at until.
func acceptUntilQuiet(sides []*side, quiet time.Duration, until time.Time) {
	for time.Now().Before(until) && !allQuietFor(sides, quiet) {
		time.Sleep(drainPoll)
	}
}

func allQuietFor(sides []*side, d time.Duration) bool {
	quiet := true
	for _, sd := range sides {
		quiet = quiet && sd.proxy.QuietFor(d)
	}
	return quiet
}

// shutdown shuts every side's proxy and HTTP server down at once, each
// closing the connections still open when ctx is done; it reports whether
// all ended before.
func shutdown(ctx context.Context, sides []*side) (ended bool) {
	var drained sync.WaitGroup
	var timedOut atomic.Bool
	for _, sd := range sides {
		for _, shut := range []func(context.Context) error{sd.proxy.Shutdown, sd.http.Shutdown} {
			drained.Go(func() {
				if shut(ctx) != nil {
					timedOut.Store(true)
				}
			})
		}
	}
	drained.Wait()
	return !timedOut.Load()
}
