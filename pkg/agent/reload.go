package agent

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/veneermesh/veneer/pkg/agent/config"
	"github.com/veneermesh/veneer/pkg/agent/watch"
	"github.com/veneermesh/veneer/pkg/decor"
)

// watchConfig says on changed each time the file at path changes (it looks
// every second) until stop is called; with no file, it never says.
func watchConfig(ctx context.Context, path string) (changed <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	if path == "" {
		return ch, func() {}
	}
	ctx, stop = context.WithCancel(ctx)
	go watch.File(ctx, path, time.Second, func() { ch <- struct{}{} })
	return ch, stop
}

// reloadConfig loads the file again and applies it, or keeps the running
// config and says why.
func reloadConfig(path string, apply func(*config.Config) error, log zerolog.Logger) {
	if path == "" {
		log.Info().Msg("reload asked for, but there is no --config file")
		return
	}
	c, err := config.Load(path, decor.Schema())
	if err == nil {
		err = apply(c)
	}
	if err != nil {
		log.Error().Err(err).Msg("config reload refused; the running config stays")
		return
	}
	log.Info().Str("config", path).Msg("config reloaded")
}
