package imagearchive

import "path/filepath"

// Veneer is veneer's two images as Dockerfile.init and Dockerfile.agent
// build them, made from bin's binaries without a Docker engine:
// veneer-init:dev on base (a Debian root with iptables, as a tar:
// make's bin/debian-base.tar), veneer-agent:dev on nothing, as 1337:1337.
// `make image-archive` writes them; `docker load`, `ctr images import` and
// `kind load image-archive` take the archive.
func Veneer(bin, base string) []Image {
	return []Image{
		{ // Dockerfile.init
			Ref: "veneer-init:dev", Layers: []string{base},
			Files:      []File{{Path: "usr/local/bin/veneer-init", Src: filepath.Join(bin, "veneer-init"), Mode: 0o755}},
			Entrypoint: []string{"/usr/local/bin/veneer-init"},
		},
		{ // Dockerfile.agent
			Ref:        "veneer-agent:dev",
			Files:      []File{{Path: "veneer-agent", Src: filepath.Join(bin, "veneer-agent"), Mode: 0o755}},
			Entrypoint: []string{"/veneer-agent"},
			User:       "1337:1337",
		},
	}
}
