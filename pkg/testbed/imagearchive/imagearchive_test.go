package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readArchive returns an archive's files by name.
func readArchive(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[h.Name]; dup {
			t.Errorf("%s is in the archive twice", h.Name)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
}

// readLayer returns a layer's entries by name.
func readLayer(t *testing.T, data []byte) map[string]*tar.Header {
	t.Helper()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	// A base layer on disk, as debootstrap's tar would be.
	var base bytes.Buffer
	tw := tar.NewWriter(&base)
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	basePath := filepath.Join(dir, "base.tar")
	os.WriteFile(basePath, base.Bytes(), 0o644)
	binPath := filepath.Join(dir, "prog")
	os.WriteFile(binPath, []byte("#!/bin/sh\n"), 0o755)

	images := []Image{
		{Ref: "a:dev", Layers: []string{basePath},
			Files:      []File{{Path: "usr/local/bin/prog", Src: binPath, Mode: 0o755}, {Path: "/usr/local/bin/alias", Link: "prog"}},
			Entrypoint: []string{"/usr/local/bin/prog"}, User: "1337:1337"},
		{Ref: "b:dev", Layers: []string{basePath}, Cmd: []string{"sh"}},
	}
	var out bytes.Buffer
	if err := Write(&out, images...); err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, out.Bytes())

	var manifest []manifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 2 || manifest[0].RepoTags[0] != "a:dev" || manifest[1].RepoTags[0] != "b:dev" {
		t.Fatalf("manifest: got %+v; want a:dev and b:dev", manifest)
	}
	baseSum := sha256.Sum256(base.Bytes())
	baseName := hex.EncodeToString(baseSum[:]) + "/layer.tar"
	if manifest[0].Layers[0] != baseName || manifest[1].Layers[0] != baseName {
		t.Errorf("the shared base layer: got %v and %v; want %s in both", manifest[0].Layers, manifest[1].Layers, baseName)
	}
	if len(manifest[0].Layers) != 2 || len(manifest[1].Layers) != 1 {
		t.Errorf("layers: got %d and %d; want 2 (base, files) and 1 (base)", len(manifest[0].Layers), len(manifest[1].Layers))
	}

	for _, m := range manifest {
		var config struct {
			OS     string `json:"os"`
			Config struct {
				Entrypoint, Cmd, Env []string
				User                 string
			} `json:"config"`
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		raw := files[m.Config]
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:])+".json" != m.Config {
			t.Errorf("%s: the config's name is not its digest", m.RepoTags[0])
		}
		if err := json.Unmarshal(raw, &config); err != nil {
			t.Fatalf("%s: config: %v", m.RepoTags[0], err)
		}
		// Each diff ID is the digest of the layer stored under that name.
		for i, l := range m.Layers {
			sum := sha256.Sum256(files[l])
			if want := "sha256:" + hex.EncodeToString(sum[:]); config.RootFS.DiffIDs[i] != want {
				t.Errorf("%s: diff ID %d: got %s; want %s, the stored layer's", m.RepoTags[0], i, config.RootFS.DiffIDs[i], want)
			}
		}
		if config.OS != "linux" || !slices.Equal(config.Config.Env, []string{DefaultPath}) {
			t.Errorf("%s: os %q, env %v; want linux and the default PATH", m.RepoTags[0], config.OS, config.Config.Env)
		}
		if m.RepoTags[0] == "a:dev" && (config.Config.User != "1337:1337" || config.Config.Entrypoint[0] != "/usr/local/bin/prog") {
			t.Errorf("a:dev: user %q, entrypoint %v", config.Config.User, config.Config.Entrypoint)
		}
	}

	// The files layer: parents first, the file's mode, the link.
	entries := readLayer(t, files[manifest[0].Layers[1]])
	for _, d := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		if h := entries[d]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("the files layer lacks the directory %s", d)
		}
	}
	if h := entries["usr/local/bin/prog"]; h == nil || h.Mode != 0o755 || h.Size != 10 {
		t.Errorf("prog: got %+v; want mode 0755, 10 bytes", h)
	}
	if h := entries["usr/local/bin/alias"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "prog" {
		t.Errorf("alias: got %+v; want a link to prog", h)
	}

	// The same input makes the same archive: digests are stable.
	var again bytes.Buffer
	if err := Write(&again, images...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Error("two archives of the same images differ")
	}
}

func TestWriteErrors(t *testing.T) {
	for name, img := range map[string]Image{
		"no ref":          {Cmd: []string{"sh"}},
		"missing layer":   {Ref: "x:1", Layers: []string{"/nonexistent/layer.tar"}},
		"missing file":    {Ref: "x:1", Files: []File{{Path: "bin/x", Src: "/nonexistent/x"}}},
		"path is nothing": {Ref: "x:1", Files: []File{{Path: "/", Link: "x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := Write(io.Discard, img); err == nil {
				t.Error("got no error")
			}
		})
	}
}

// Veneer's images are what the Dockerfiles build: each COPY's file at its
// path with its mode, the same ENTRYPOINT and USER, the init's on the base.
func TestVeneerMatchesTheDockerfiles(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{"veneer-init", "veneer-agent"} {
		os.WriteFile(filepath.Join(bin, name), []byte(name), 0o755)
	}
	var base bytes.Buffer
	tar.NewWriter(&base).Close()
	basePath := filepath.Join(bin, "base.tar")
	os.WriteFile(basePath, base.Bytes(), 0o644)
	var out bytes.Buffer
	if err := Write(&out, Veneer(bin, basePath)...); err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, out.Bytes())
	var manifest []manifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	for i, df := range []string{"Dockerfile.init", "Dockerfile.agent"} {
		text, err := os.ReadFile(filepath.Join("..", "..", "..", df))
		if err != nil {
			t.Fatal(err)
		}
		var config struct {
			Config struct {
				Entrypoint []string
				User       string
			} `json:"config"`
		}
		json.Unmarshal(files[manifest[i].Config], &config)
		layer := readLayer(t, files[manifest[i].Layers[len(manifest[i].Layers)-1]])
		for _, line := range bytes.Split(text, []byte("\n")) {
			f := strings.Fields(string(line))
			switch {
			case len(f) == 0:
			case f[0] == "COPY":
				if h := layer[strings.TrimPrefix(f[2], "/")]; h == nil || h.Mode != 0o755 {
					t.Errorf("%s: %s is not in the image as an executable: %+v", df, f[2], h)
				}
			case f[0] == "ENTRYPOINT":
				var want []string
				json.Unmarshal([]byte(strings.TrimPrefix(string(line), "ENTRYPOINT ")), &want)
				if !slices.Equal(config.Config.Entrypoint, want) {
					t.Errorf("%s: entrypoint %v; want %v", df, config.Config.Entrypoint, want)
				}
			case f[0] == "USER" && config.Config.User != f[1]:
				t.Errorf("%s: user %q; want %q", df, config.Config.User, f[1])
			case f[0] == "FROM" && (f[1] == "scratch") != (len(manifest[i].Layers) == 1):
				t.Errorf("%s: FROM %s, and the image has %d layers", df, f[1], len(manifest[i].Layers))
			}
		}
	}
}
