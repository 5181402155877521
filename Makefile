# veneer: `make demo` shows it, `make test` proves it. Both run as root on a
# Debian machine with Go; `make deps` installs the rest with apt-get.

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
# Static binaries: the agent image is scratch-based.
export CGO_ENABLED := 0

BINARIES := bin/veneer-init bin/veneer-agent bin/localpod bin/veneerctl

.PHONY: all build test fuzz reliability bench demo deps clean manifests images docker-test kind-test

all: build

build: $(BINARIES)

bin/veneer-init: FORCE
	$(GO) build -trimpath -o $@ ./cmd/init
# -buildvcs=auto: the admin page's /version shows the commit, even where
# GOFLAGS turns stamping off.
bin/veneer-agent: FORCE
	$(GO) build -trimpath -buildvcs=auto -o $@ ./cmd/agent
bin/localpod: FORCE
	$(GO) build -trimpath -o $@ ./cmd/localpod
bin/veneerctl: FORCE
	$(GO) build -trimpath -o $@ ./cmd/veneerctl
FORCE:

# The tools the tests and the demo drive: both iptables backends, the
# seed's Python server, curl as a client, Prometheus (its rules' tests and a
# scrape of the agent), Chromium (the admin page's test), openssl s_client
# (a workload that speaks mTLS without an agent: the intruder of the mTLS
# tests).
DEB_TOOLS := iptables-legacy:iptables iptables-nft:iptables /usr/bin/python3:python3 curl:curl ip:iproute2 promtool:prometheus chromium:chromium openssl:openssl
deps:
	@missing=""; for t in $(DEB_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${t%%:*} ] || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Every test, with the race detector, then a short run of each fuzzer (its
# corpus is in the package's testdata/fuzz). The integration tests need root;
# as another user they skip and say why.
test: deps bin/jaeger bin/spire-server bin/spire-agent
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./... # Linux-only code stays in _linux.go files, stubbed elsewhere
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz

# Jaeger, for the traces' test: built from the Go module proxy in a tools
# module of its own (test/tools/jaeger pins the version), once; about four
# minutes on two cores with an empty cache.
bin/jaeger:
	cd test/tools/jaeger && GOBIN=$(CURDIR)/bin $(GO) install github.com/jaegertracing/jaeger/cmd/jaeger

# SPIRE, for the mTLS tests: built from the Go module proxy in a tools
# module of its own (test/tools/spire pins v1.13.3), once. The server needs
# cgo (SQLite): about five minutes and 3.6 GB of memory at link on two
# cores with an empty cache; the agent is static.
bin/spire-server:
	cd test/tools/spire && GOBIN=$(CURDIR)/bin CGO_ENABLED=1 $(GO) install github.com/spiffe/spire/cmd/spire-server
bin/spire-agent:
	cd test/tools/spire && GOBIN=$(CURDIR)/bin $(GO) install github.com/spiffe/spire/cmd/spire-agent

# Load, faults and hostile input at full scale (10,000 connections, 1,000
# keep-alive clients for a minute, 1 GiB each way, a rolling restart under
# load...), bounded in count and time, with the figures printed. The same
# tests run in make test at a smaller scale.
RELIABILITY := TestLoad|TestRollingRestartUnderLoad|TestAgentKilledFailsClosed|TestAppDownAndRestarting|TestHostileHeads|TestSlowClients|TestConnectionFlood|TestAgentDrainsOnSIGTERM|TestRerunOverStaleRulesNeverBypasses|TestTCPAuthorization
reliability: deps
	@VENEER_RELIABILITY=full CGO_ENABLED=1 $(GO) test -count=1 -v -timeout 30m -run '^($(RELIABILITY))$$' ./test/integration \
	  > reliability.log 2>&1; rc=$$?; \
	  grep -E '^(--- |ok|FAIL|PASS)|_test.go:[0-9]+: ' reliability.log | grep -v '^\s*{'; \
	  echo "(the whole output: reliability.log)"; exit $$rc

# veneer against a direct connection, HAProxy and nginx, behind the same
# REDIRECT in a local pod (test/bench); prints one table, kept in bench.md.
bench: deps build bin/jaeger
	@command -v wrk >/dev/null && command -v haproxy >/dev/null && command -v nginx >/dev/null && command -v perf >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk haproxy nginx-light linux-perf >/dev/null; }
	$(GO) build -o bin/fastapp ./test/bench/fastapp
	@[ -x bin/fortio ] || GOBIN=$(CURDIR)/bin CGO_ENABLED=0 $(GO) install fortio.org/fortio@v1.66.0
	$(GO) run ./test/bench -bin bin -rounds 5 -duration 3s -two-workers -perf -mesh -jaeger bin/jaeger $(BENCHFLAGS) | tee bench.md

FUZZ := sniff:FuzzClassify sniff:FuzzPeerHello config:FuzzParse inject:FuzzInject capture:FuzzPlan httpproxy:FuzzLoop http1:FuzzRequest http1:FuzzChunked
# A count, not a duration: with -fuzztime=3s, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure when the time runs out
# while a worker is mid-input (golang/go#75804, fixed in Go 1.27; seen once
# in CI's FuzzParse). FUZZTIME=30s still works for a longer look.
FUZZTIME ?= 20000x
fuzz:
	@for f in $(FUZZ); do \
	  $(GO) test -run='^$$' -fuzz="^$${f#*:}$$" -fuzztime=$(FUZZTIME) ./pkg/$${f%%:*} || exit 1; \
	done

# The seed's scenario in a local pod: the Python server, intercepted and
# decorated, with requests from outside the pod.
demo: deps build
	./deploy/local/demo.sh

# The seed's Deployment with veneer injected, both sidecar kinds. A test
# (deploy/manifests_test.go) fails when these are not up to date.
MANIFEST_HEADER = \# Generated by veneerctl inject from python-app.yaml (make manifests); do not edit.
manifests: bin/veneerctl
	{ echo '$(MANIFEST_HEADER)'; bin/veneerctl inject --sidecar native -f deploy/kubernetes/python-app.yaml; } > deploy/kubernetes/python-native.yaml
	{ echo '$(MANIFEST_HEADER)'; bin/veneerctl inject --sidecar classic -f deploy/kubernetes/python-app.yaml; } > deploy/kubernetes/python-classic.yaml

# Both images, with docker: static binaries copied onto their bases
# (deploy/docker/standins.sh builds the bases locally where none can be pulled).
images: bin/veneer-init bin/veneer-agent
	deploy/docker/standins.sh
	docker build -q -f Dockerfile.init -t veneer-init:dev .
	docker build -q -f Dockerfile.agent -t veneer-agent:dev .
	@docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^veneer-'

# The kind test's assertions against a docker-made pod, where kind cannot run.
docker-test: images
	deploy/docker/test.sh

# In a kind cluster (needs kind, kubectl, docker and a registry for the base
# images): deploy the seed's scenario and assert from a client pod.
kind-test: images
	deploy/kind/test.sh

clean:
	rm -rf bin
