// Package watch notices when a file's content changes. Kubernetes updates a
// mounted ConfigMap by swapping a symlink, which inotify on the file itself
// misses; comparing the content on a timer sees every kind of update.
//
//	go watch.File(ctx, "/etc/veneer/config.yaml", time.Second, reload)
package watch

import (
	"bytes"
	"context"
	"os"
	"time"
)

// File calls changed whenever the content at path differs from the last
// content seen, checking every interval until ctx is done. A missing or
// unreadable file is not a change: the last good content stands.
func File(ctx context.Context, path string, interval time.Duration, changed func()) {
	last, _ := os.ReadFile(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err != nil || bytes.Equal(b, last) {
			continue
		}
		last = b
		changed()
	}
}
