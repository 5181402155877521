# veneer: `make demo` shows it, `make test` proves it. Both run as root on a
# Debian machine with Go; `make deps` installs the rest with apt-get.

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
# Static binaries: the agent image is scratch-based.
export CGO_ENABLED := 0

BINARIES := bin/veneer-init bin/veneer-agent bin/localpod bin/veneerctl bin/localcluster

.PHONY: all build test fuzz reliability bench demo deps k8s-deps k8s-binaries k8s-test clean manifests images image-archive kind-test

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
bin/localcluster: FORCE
	$(GO) build -trimpath -o $@ ./cmd/localcluster
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
	$(MAKE) --no-print-directory k8s-test

# What the local cluster runs on, from Debian: containerd (1.6, which the
# kubelet still accepts), runc, the CNI plugins, conntrack for kube-proxy,
# debootstrap for the images' Debian layer.
K8S_DEB_TOOLS := containerd:containerd runc:runc /usr/lib/cni/ptp:containernetworking-plugins conntrack:conntrack debootstrap:debootstrap
k8s-deps:
	@$(MAKE) --no-print-directory deps DEB_TOOLS="$(K8S_DEB_TOOLS)"

# Kubernetes v1.37.2 and etcd v3.6.16, built from the Go module proxy in
# tools modules of their own (test/tools/kubernetes, test/tools/etcd), once:
# about 8 minutes and 4.3 GB of build cache on two cores with an empty
# cache. The version is stamped as Kubernetes' own build does.
K8S_VERSION  := v1.37.2
K8S_BINARIES := $(addprefix bin/,kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
K8S_LDFLAGS  := -s -w $(foreach v,gitVersion=$(K8S_VERSION) gitMajor=1 gitMinor=37 gitTreeState=clean,-X k8s.io/component-base/version.$(v))
$(K8S_BINARIES) &:
	cd test/tools/kubernetes && GOBIN=$(CURDIR)/bin $(GO) install -trimpath -ldflags '$(K8S_LDFLAGS)' \
	  $(addprefix k8s.io/kubernetes/cmd/,$(notdir $(K8S_BINARIES)))
k8s-binaries: $(K8S_BINARIES) bin/etcd
bin/etcd:
	cd test/tools/etcd && $(GO) build -trimpath -ldflags '-s -w' -o $(CURDIR)/$@ go.etcd.io/etcd/server/v3

# veneer in a real Kubernetes (test/kubernetes): a single-node cluster made
# by pkg/testbed/localcluster from upstream binaries, in a namespace, a folder and
# a cgroup of its own, with images made without Docker; the tests apply the
# manifests users apply, then the cluster is removed, also when a test
# fails or the test binary dies (localcluster down, after the tests).
# VENEER_K8S_KEEP=1 leaves it up to look around in.
K8S_DIR ?= /tmp/veneer-k8s
k8s-test: deps k8s-deps build k8s-binaries bin/debian-base.tar
	@VENEER_K8S_TEST=1 VENEER_K8S_DIR=$(K8S_DIR) $(GO) test -count=1 -v -timeout 20m ./test/kubernetes; rc=$$?; \
	  [ -n "$$VENEER_K8S_KEEP" ] || bin/localcluster down $(K8S_DIR); exit $$rc

# The Debian layer of the local cluster's images (veneer-init's, the
# seed's Python app's, the curl client's), where no registry gives
# debian:bookworm-slim: debootstrap's minbase with what they need, trimmed
# as the slim image is. About 80 seconds, once.
bin/debian-base.tar:
	@root=$$(mktemp -d) && trap 'rm -rf "$$root"' EXIT && \
	debootstrap --variant=minbase --include=iptables,python3,curl,ca-certificates bookworm "$$root" http://deb.debian.org/debian >/dev/null && \
	rm -rf "$$root"/var/lib/apt/lists/* "$$root"/var/cache/apt/*.bin "$$root"/var/cache/apt/archives/*.deb \
	  "$$root"/usr/share/doc/* "$$root"/usr/share/man/* "$$root"/usr/share/info/* "$$root"/usr/share/locale/* && \
	tar --numeric-owner -C "$$root" -cf $@.tmp . && mv $@.tmp $@

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

FUZZ := datapath/looptls:FuzzRecords datapath/sniff:FuzzClassify datapath/sniff:FuzzPeerHello agent/config:FuzzParse kube/inject:FuzzInject intercept/capture:FuzzPlan datapath/httpproxy:FuzzLoop datapath/http1:FuzzRequest datapath/http1:FuzzChunked
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

# Both images as one archive, without a Docker engine (pkg/testbed/imagearchive,
# as the Kubernetes tests make theirs): bin/veneer-images.tar, which docker load
# -i, ctr images import and kind load image-archive take.
image-archive: bin/veneer-init bin/veneer-agent bin/localcluster
	@$(MAKE) --no-print-directory deps DEB_TOOLS="debootstrap:debootstrap"
	@$(MAKE) --no-print-directory bin/debian-base.tar
	bin/localcluster images bin bin/veneer-images.tar
	@ls -l bin/veneer-images.tar

# Both images, with docker: static binaries copied onto their bases
# (deploy/docker/standins.sh builds the bases locally where none can be pulled).
images: bin/veneer-init bin/veneer-agent
	deploy/docker/standins.sh
	docker build -q -f Dockerfile.init -t veneer-init:dev .
	docker build -q -f Dockerfile.agent -t veneer-agent:dev .
	@docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^veneer-'

# The Kubernetes tests in a kind cluster, for machines where kind runs
# (needs kind, kubectl and docker): the same tests as make k8s-test, whose
# images it loads with kind load image-archive.
kind-test: build bin/debian-base.tar
	deploy/kind/test.sh

clean:
	rm -rf bin
