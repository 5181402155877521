// Package imagearchive writes container images into one archive in the
// format `docker save` makes, which `docker load`, `kind load image-archive`
// and containerd's `ctr images import` all read: images for a cluster that
// reaches no registry, made without a Docker engine.
//
// An image is layers (tar files on disk, bottom first) plus one last layer
// of files named in the Image:
//
//	err := imagearchive.Write(f, imagearchive.Image{
//		Ref:        "veneer-agent:dev",
//		Files:      []imagearchive.File{{Path: "veneer-agent", Src: "bin/veneer-agent", Mode: 0o755}},
//		Entrypoint: []string{"/veneer-agent"},
//		User:       "1337:1337",
//	})
//
// A layer shared by several images is stored once.
package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"time"
)

// Image is one image of the archive.
type Image struct {
	Ref        string   // its name and tag, "python:3.12-slim"; required
	Layers     []string // tar files on disk, bottom first (an empty list: FROM scratch)
	Files      []File   // a last layer of these files; none: no last layer
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=value; none: a PATH of the usual directories
	User       string   // "uid:gid"; empty: root
	WorkingDir string   // empty: /
}

// File is one file or symbolic link of an image's last layer.
type File struct {
	Path string // inside the image, relative to / ("usr/local/bin/python")
	Src  string // the file on this machine to copy; empty with Link
	Link string // a symbolic link's target, instead of Src
	Mode int64  // permission bits; 0: 0644 (links ignore it)
}

// DefaultPath is the PATH an image gets when Env sets none, as Docker's.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is every entry's modification time in a layer made here, so that the
// same files make the same layer, and the same digest, on every run.
var epoch = time.Unix(0, 0)

type layer struct {
	digest string // hex sha256 of the uncompressed tar: the layer's diff ID
	src    string // a file on disk, or
	data   []byte // a layer made here
}

type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Write writes images as one archive to w.
func Write(w io.Writer, images ...Image) error {
	tw := tar.NewWriter(w)
	written := map[string]bool{} // layer digests already in the archive
	var manifest []manifestEntry
	for _, img := range images {
		if img.Ref == "" {
			return fmt.Errorf("imagearchive: an image without a Ref")
		}
		layers, err := layersOf(img)
		if err != nil {
			return fmt.Errorf("imagearchive: %s: %w", img.Ref, err)
		}
		entry := manifestEntry{RepoTags: []string{img.Ref}}
		var diffIDs []string
		for _, l := range layers {
			name := l.digest + "/layer.tar"
			if !written[l.digest] {
				if err := writeLayer(tw, name, l); err != nil {
					return fmt.Errorf("imagearchive: %s: %w", img.Ref, err)
				}
				written[l.digest] = true
			}
			entry.Layers = append(entry.Layers, name)
			diffIDs = append(diffIDs, "sha256:"+l.digest)
		}
		config, err := configOf(img, diffIDs)
		if err != nil {
			return fmt.Errorf("imagearchive: %s: %w", img.Ref, err)
		}
		sum := sha256.Sum256(config)
		entry.Config = hex.EncodeToString(sum[:]) + ".json"
		if err := writeBytes(tw, entry.Config, config); err != nil {
			return err
		}
		manifest = append(manifest, entry)
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := writeBytes(tw, "manifest.json", m); err != nil {
		return err
	}
	return tw.Close()
}

// layersOf returns img's layers, digested, bottom first.
func layersOf(img Image) ([]layer, error) {
	var layers []layer
	for _, src := range img.Layers {
		d, err := digestFile(src)
		if err != nil {
			return nil, err
		}
		layers = append(layers, layer{digest: d, src: src})
	}
	if len(img.Files) > 0 {
		data, err := filesLayer(img.Files)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		layers = append(layers, layer{digest: hex.EncodeToString(sum[:]), data: data})
	}
	return layers, nil
}

// filesLayer makes a layer of files, with their parent directories.
func filesLayer(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		name := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if name == "" {
			return nil, fmt.Errorf("file %q: not a path inside the image", f.Path)
		}
		if err := writeDirs(tw, path.Dir(name), dirs); err != nil {
			return nil, err
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Link, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Path, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeDirs writes dir and its parents, each once.
func writeDirs(tw *tar.Writer, dir string, done map[string]bool) error {
	if dir == "." || dir == "/" || done[dir] {
		return nil
	}
	if err := writeDirs(tw, path.Dir(dir), done); err != nil {
		return err
	}
	done[dir] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch})
}

// configOf is img's image config (the OCI image config, as Docker writes it).
func configOf(img Image, diffIDs []string) ([]byte, error) {
	env := img.Env
	if len(env) == 0 {
		env = []string{DefaultPath}
	}
	type runConfig struct {
		Entrypoint []string `json:",omitempty"`
		Cmd        []string `json:",omitempty"`
		Env        []string `json:",omitempty"`
		User       string   `json:",omitempty"`
		WorkingDir string   `json:",omitempty"`
	}
	if diffIDs == nil {
		diffIDs = []string{} // an image of no layer still lists them
	}
	return json.Marshal(struct {
		Architecture string    `json:"architecture"`
		OS           string    `json:"os"`
		Created      time.Time `json:"created"`
		Config       runConfig `json:"config"`
		RootFS       struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}{
		Architecture: runtime.GOARCH, OS: "linux", Created: epoch,
		Config: runConfig{Entrypoint: img.Entrypoint, Cmd: img.Cmd, Env: env, User: img.User, WorkingDir: img.WorkingDir},
		RootFS: struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		}{"layers", diffIDs},
	})
}

func writeLayer(tw *tar.Writer, name string, l layer) error {
	if l.data != nil {
		return writeBytes(tw, name, l.data)
	}
	f, err := os.Open(l.src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: st.Size(), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("copying layer %s: %w", l.src, err)
	}
	return nil
}

func writeBytes(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func digestFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
