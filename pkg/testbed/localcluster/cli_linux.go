//go:build linux

package localcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/veneermesh/veneer/pkg/testbed/imagearchive"
	"github.com/veneermesh/veneer/pkg/testbed/localpod"
)

const usage = `usage:
  localcluster up DIR BIN                 start a cluster in DIR with BIN's binaries
  localcluster kubectl DIR BIN -- ARGS... run kubectl in the node's namespace
  localcluster import DIR ARCHIVE         import an image archive into the node
  localcluster images BIN ARCHIVE         write veneer's two images from BIN's binaries and
                                          BIN/debian-base.tar, as docker save would (no Docker)
  localcluster down DIR                   stop the cluster and remove it (keeps DIR/logs)
  localcluster pause                      a pod sandbox's program`

// Main is the localcluster command.
func Main(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf(usage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch {
	case args[0] == "pause" && len(args) == 1:
		Pause()
		return nil
	case args[0] == "up" && len(args) == 3:
		self, err := os.Executable()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		c, err := Up(ctx, Options{Dir: args[1], Bin: args[2], Pause: self, Progress: stdout})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "kubectl: localcluster kubectl %s %s -- get pods -A\n", c.Dir, args[2])
		return nil
	case args[0] == "kubectl" && len(args) >= 4 && args[3] == "--":
		c, err := open(args[1], args[2])
		if err != nil {
			return err
		}
		out, err := c.Kubectl(ctx, os.Stdin, args[4:]...)
		fmt.Fprint(stdout, out)
		return err
	case args[0] == "import" && len(args) == 3:
		c, err := open(args[1], "")
		if err != nil {
			return err
		}
		return c.Import(ctx, args[2])
	case args[0] == "images" && len(args) == 3:
		return writeImages(args[1], args[2])
	case args[0] == "down" && len(args) == 2:
		dir, err := filepath.Abs(args[1])
		if err != nil {
			return err
		}
		return Down(dir)
	}
	return fmt.Errorf(usage)
}

// open returns the cluster Up started in dir, from another process.
func open(dir, bin string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.kubeconfig")); err != nil {
		return nil, fmt.Errorf("no cluster in %s: %w", dir, err)
	}
	p, err := localpod.Open(podName)
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, "admin.kubeconfig"), Node: p.Pod, bin: bin}, nil
}

// writeImages writes veneer's images (imagearchive.Veneer) to archive.
func writeImages(bin, archive string) error {
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	err = imagearchive.Write(f, imagearchive.Veneer(bin, filepath.Join(bin, "debian-base.tar"))...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(archive)
		return fmt.Errorf("writing %s: %w", archive, err)
	}
	return nil
}
