// Package timeout is a route's bounds on the app and on its clients, which
// the forwarder and the HTTP server keep (they are no decoration of the
// chain):
//
//	timeouts:
//	  connect: 5s    # to connect to the app
//	  request: 30s   # for the app's response head; then 504, flag UT
//	  idle: 5m       # a client keep-alive connection may idle (the default section's applies)
package timeout

import (
	"time"

	"github.com/veneermesh/veneer/pkg/agent/config"
)

// Key is the block's key in an http section.
const Key = "timeouts"

// Block is the kind of the block.
var Block = config.BlockOf[Config](Key)

// Config bounds the app and the clients.
type Config struct {
	Connect config.Duration `yaml:"connect" json:"connect"` // to connect to the app; 0 means 5s
	Request config.Duration `yaml:"request" json:"request"` // for the app's response head; 0 means none
	Idle    config.Duration `yaml:"idle" json:"idle"`       // a client keep-alive connection may idle; 0 means 5m
}

// Defaults are the bounds of a section without the block.
var Defaults = Config{Connect: config.Duration(5 * time.Second), Idle: config.Duration(5 * time.Minute)}

func (c *Config) Provision() error {
	if c.Connect == 0 {
		c.Connect = Defaults.Connect
	}
	if c.Idle == 0 {
		c.Idle = Defaults.Idle
	}
	return nil
}
