package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A ConfigMap update: the file is a symlink into a data directory, and the
// update points the symlink at a new directory.
func TestFileSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"v1", "v2"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
		os.WriteFile(filepath.Join(dir, d, "config.yaml"), []byte("version: "+d), 0o644)
	}
	os.Symlink("v1", filepath.Join(dir, "..data"))
	path := filepath.Join(dir, "config.yaml")
	os.Symlink("..data/config.yaml", path)

	changed := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go File(ctx, path, 5*time.Millisecond, func() { changed <- struct{}{} })
	time.Sleep(20 * time.Millisecond)
	select {
	case <-changed:
		t.Fatal("changed before anything changed")
	default:
	}
	tmp := filepath.Join(dir, "..data_tmp")
	os.Symlink("v2", tmp)
	os.Rename(tmp, filepath.Join(dir, "..data"))
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the symlink swap was not noticed")
	}
}
