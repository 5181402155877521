package looptls

// FillHandshakes makes the bound on handshakes in flight full, as if
// maxHandshakes of them were running, until restore.
func FillHandshakes() (restore func()) {
	inFlight.Add(maxHandshakes)
	return func() { inFlight.Add(-maxHandshakes) }
}
