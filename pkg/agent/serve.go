package agent

import (
	"context"
	"net"
	"runtime"

	"github.com/rs/zerolog"
)

// serve starts every side's proxy and HTTP server, then the admin
// endpoint, and turns /ready to 200; each server's Serve sends what it
// returned on the channel.
func serve(sides []*side, adm *adminServers) <-chan error {
	stopped := make(chan error, 2*len(sides)+1)
	for _, sd := range sides {
		go func() { stopped <- sd.proxy.Serve(sd.lns...) }()
		go func() { stopped <- sd.http.Serve() }()
	}
	go func() { stopped <- adm.srv.Serve(adm.ln) }()
	adm.api.SetReady(true)
	return stopped
}

// logReady says where the agent serves.
func logReady(o Options, sides []*side, admin net.Addr, log zerolog.Logger) {
	ev := log.Info().Str("mode", o.Mode).Str("listen", sides[0].lns[0].Addr().String()).Str("admin", admin.String()).Str("config", o.Config).
		Int("workers", runtime.GOMAXPROCS(0))
	if len(sides) > 1 {
		ev = ev.Str("outbound_listen", sides[1].lns[0].Addr().String())
	}
	ev.Msg("veneer-agent ready")
}

// serveUntilDone reloads the config on each SIGHUP (reload) and file change
// (changed) until ctx is done, which returns nil, or a server or an event
// loop stops, which returns what it returned.
func serveUntilDone(ctx context.Context, stopped, loopStopped <-chan error, reload, changed <-chan struct{}, reloadConfig func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-stopped:
			return err
		case err := <-loopStopped:
			return err
		case <-reload:
			reloadConfig()
		case <-changed:
			reloadConfig()
		}
	}
}
