module github.com/veneermesh/veneer

go 1.26.0

require (
	github.com/coreos/go-iptables v0.8.0
	github.com/rs/zerolog v1.35.1
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
)
