# veneer: `make demo` shows it, `make test` proves it. Both run as root on a
# Debian machine with Go; `make deps` installs the rest with apt-get.

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
# Static binaries: the agent image is scratch-based.
export CGO_ENABLED := 0

BINARIES := bin/veneer-init bin/veneer-agent bin/localpod

.PHONY: all build test demo deps clean

all: build

build: $(BINARIES)

bin/veneer-init: FORCE
	$(GO) build -trimpath -o $@ ./cmd/init
bin/veneer-agent: FORCE
	$(GO) build -trimpath -o $@ ./cmd/agent
bin/localpod: FORCE
	$(GO) build -trimpath -o $@ ./cmd/localpod
FORCE:

# The tools the tests and the demo drive: both iptables backends, the
# seed's Python server, curl as a client.
DEB_TOOLS := iptables-legacy:iptables iptables-nft:iptables python3:python3 curl:curl
deps:
	@missing=""; for t in $(DEB_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${t%%:*} ] || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Every test, with the race detector. The integration tests need root; as
# another user they skip and say why.
test: deps
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# The seed's scenario in a local pod: the Python server, intercepted and
# decorated, with requests from outside the pod.
demo: deps build
	./deploy/local/demo.sh

clean:
	rm -rf bin
