package loop

// End is where a connection forwarded as bytes stands after PumpPair.
type End uint8

const (
	Moving      End = iota // both flows wait for the poller
	Again                  // a flow yielded: pump again on the next turn, no edge will come for it
	Closed                 // both ends were read and passed on: close both sockets
	ClientBroke            // the client reset or broke: reset both
	AppBroke               // the app reset or broke: reset both
)

// PumpPair pumps both directions of a connection forwarded as bytes, up
// from client to app and down from app to client, once each. A flow that
// ends after the other passes its EOF on by the close that follows at
// once, not by a shutdown of its own.
func PumpPair(l *Loop, up, down *Flow, client, app *Socket) End {
	u, _ := up.Pump(l, client, app, down.Shut)
	d, _ := down.Pump(l, app, client, up.Shut)
	switch {
	case u == ReadFailed || d == WriteFailed:
		return ClientBroke
	case u == WriteFailed || d == ReadFailed:
		return AppBroke
	case u == Finished && d == Finished:
		return Closed
	case u == Yielded || d == Yielded:
		return Again
	}
	return Moving
}
