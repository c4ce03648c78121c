# fleetsync — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Where `make demo` keeps its fleet, and where `make test` keeps the shared test fleet.
FLEET_DIR ?= $(CURDIR)/.fleet
TEST_FLEET_DIR ?= $(CURDIR)/.testfleet
CLUSTERS ?= north,south,east
# The test fleet adds a hub cluster (agents coordinating through it).
TEST_CLUSTERS ?= north,south,east,west,center,hub
TEST_FLAGS ?= -count=1 -timeout 40m
# The fault suite's own fleet: the test clusters, west with an etcd of its own.
E2E_FLEET_DIR ?= $(CURDIR)/.e2efleet
FUZZTIME ?= 20s

.PHONY: all build test e2e soak lint generate verify fuzz bench scale image demo demo-down fleet-up fleet-down clean clicompare golden

all: build

build:
	$(GO) build -o $(BIN)/fleetsync ./cmd/fleetsync

# test: one local fleet (real etcd, kube-apiserver, controllers, kwok nodes, registries)
# is started for the whole run and shared by every package's tests through
# FLEETSYNC_TESTFLEET_DIR; it is always stopped afterwards.
test:
	@$(GO) run ./hack/localfleet down --dir $(TEST_FLEET_DIR) >/dev/null 2>&1 || true
	$(GO) run ./hack/localfleet up --dir $(TEST_FLEET_DIR) --clusters $(TEST_CLUSTERS)
	@status=0; \
	FLEETSYNC_TESTFLEET_DIR=$(TEST_FLEET_DIR) $(GO) test $(TEST_FLAGS) ./... || status=$$?; \
	if [ $$status -eq 0 ]; then FLEETSYNC_TESTFLEET_DIR=$(TEST_FLEET_DIR) $(GO) test -race $(TEST_FLAGS) \
	  ./pkg/render/ ./pkg/plan/ ./pkg/fleet/ ./pkg/apply/ ./pkg/drift/ ./pkg/reconcile/ ./internal/daemon/ ./cmd/fleetsync/ || status=$$?; fi; \
	$(GO) run ./hack/localfleet down --dir $(TEST_FLEET_DIR) || true; \
	exit $$status

# e2e: the fault suite (docs/security.md): one fleetsync daemon process on a
# local fleet of its own while API servers, an etcd, the git server and the
# daemon itself fail; it prints the fault table. FLEETSYNC_FAULT_TABLE names
# a file to write the table to.
e2e:
	@$(GO) run ./hack/localfleet down --dir $(E2E_FLEET_DIR) >/dev/null 2>&1 || true
	$(GO) run ./hack/localfleet up --dir $(E2E_FLEET_DIR) --clusters $(TEST_CLUSTERS) --own-etcd west
	@status=0; \
	FLEETSYNC_TESTFLEET_DIR=$(E2E_FLEET_DIR) $(GO) test -tags e2e -count=1 -timeout 30m -run '^(TestFault|TestBounded)' -v ./cmd/fleetsync/ || status=$$?; \
	$(GO) run ./hack/localfleet down --dir $(E2E_FLEET_DIR) || true; \
	exit $$status

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

generate:
	$(GO) generate ./...

# verify fails when generated files (schemas) or go.mod/go.sum are stale.
verify:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp -r schemas $$tmp/schemas.before; cp go.mod go.sum $$tmp/; \
	$(GO) generate ./... && $(GO) mod tidy && \
	if ! diff -r $$tmp/schemas.before schemas || ! diff $$tmp/go.mod go.mod || ! diff $$tmp/go.sum go.sum; then \
	  cp -r $$tmp/schemas.before/. schemas/; cp $$tmp/go.mod $$tmp/go.sum .; \
	  echo "verify: generated files or go.mod are stale: run 'make generate' and 'go mod tidy' and commit"; exit 1; \
	fi; echo "verify: schemas and go.mod are up to date"

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./pkg/fleet
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFile$$' -fuzztime $(FUZZTIME) ./pkg/fleet
	$(GO) test -run '^$$' -fuzz '^FuzzRedactURL$$' -fuzztime $(FUZZTIME) ./pkg/source
	$(GO) test -run '^$$' -fuzz '^FuzzSymlinkTarget$$' -fuzztime $(FUZZTIME) ./pkg/source
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeObjects$$' -fuzztime $(FUZZTIME) ./pkg/render
	$(GO) test -run '^$$' -fuzz '^FuzzNodeValue$$' -fuzztime $(FUZZTIME) ./pkg/render
	$(GO) test -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(FUZZTIME) ./pkg/rollout
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeInventory$$' -fuzztime $(FUZZTIME) ./pkg/apply
	$(GO) test -run '^$$' -fuzz '^FuzzWebhooks$$' -fuzztime $(FUZZTIME) ./internal/daemon

# clicompare: Kustomize and Helm output equal the kustomize and helm CLIs' for the same
# input (the CLIs are built once from the Go module proxy into the user cache dir).
clicompare:
	$(GO) test -tags clicompare -run TestCLICompare -count=1 -timeout 30m ./pkg/render/

# golden: rewrite the render golden files after an intended change.
golden:
	$(GO) test ./pkg/render/ -run TestGolden -update

# bench: every benchmark reports ratios against a baseline measured in the same run.
bench:
	$(GO) test -run '^$$' -bench BenchmarkFetch -benchtime 3x ./pkg/source/
	FLEETSYNC_TESTFLEET_DIR= $(GO) test -run '^$$' -bench BenchmarkApply1000 -benchtime 1x -timeout 30m ./pkg/apply/
	FLEETSYNC_TESTFLEET_DIR= $(GO) test -run '^$$' -bench BenchmarkMirror20 -benchtime 1x -timeout 30m ./pkg/imagesync/
	FLEETSYNC_TESTFLEET_DIR= $(GO) test -run '^$$' -bench BenchmarkDaemon -benchtime 1x -timeout 30m ./internal/daemon/
	$(GO) test -run '^$$' -bench . -benchtime 5s -timeout 60m ./bench/render/

fleet-up:
	$(GO) run ./hack/localfleet up --dir $(FLEET_DIR) --clusters $(CLUSTERS)

fleet-down:
	$(GO) run ./hack/localfleet down --dir $(FLEET_DIR)

# demo: start the built-in local fleet (north, south, east + registries), serve
# the example fleet repo from a git server on loopback and run the daemon on it
# (dashboard on http://127.0.0.1:8080/); it keeps running until `make demo-down`.
demo: build
	$(GO) build -o $(BIN)/gitserve ./hack/gitserve
	@$(MAKE) --no-print-directory demo-down >/dev/null 2>&1 || true
	$(GO) run ./hack/localfleet up --dir $(FLEET_DIR) --clusters $(CLUSTERS)
	FLEET_DIR=$(FLEET_DIR) FLEETSYNC=$(BIN)/fleetsync GITSERVE=$(BIN)/gitserve ./hack/demo.sh

# image: fleetsync's container image, built without Docker (hack/image:
# go-containerregistry) and pushed to the local fleet's source registry as
# IMAGE (default <source registry>/fleetsync:dev); deploy/ refers to it.
IMAGE ?=
image:
	@$(GO) run ./hack/localfleet up --dir $(FLEET_DIR) --clusters $(CLUSTERS) >/dev/null 2>&1 || true # already up is fine
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags=-s -o $(BIN)/linux/fleetsync ./cmd/fleetsync
	$(GO) run ./hack/image --binary $(BIN)/linux/fleetsync \
	  --ref $${IMAGE:-$$(sed -n 's/.*"source": *"\([^"]*\)".*/\1/p' $(FLEET_DIR)/registries.json)/fleetsync:dev}

# scale: the daemon as a process on a local fleet of SCALE_CLUSTERS (10)
# clusters x SCALE_APPS (20) apps: a few minutes, not in CI (docs/scaling.md).
# It uses its own fleet directory and stops it afterwards.
SCALE_CLUSTERS ?= 10
SCALE_APPS ?= 20
SCALE_OBJECTS ?= 100
SCALE_REPLICAS ?= 1
SCALE_FLEET_DIR ?= $(CURDIR)/.scalefleet
# soak: the daemon for SOAK_SECONDS (300) on 3 clusters with a commit every few
# seconds and a drift now and then; prints RSS, goroutines, fds and latency at
# the start and the end (docs/security.md). Not in CI.
SOAK_SECONDS ?= 300
SOAK_FLEET_DIR ?= $(CURDIR)/.soakfleet
soak: build
	$(GO) build -o $(BIN)/gitserve ./hack/gitserve
	@$(GO) run ./hack/localfleet down --dir $(SOAK_FLEET_DIR) >/dev/null 2>&1 || true
	$(GO) run ./hack/localfleet up --dir $(SOAK_FLEET_DIR) --clusters north,south,east
	FLEET_DIR=$(SOAK_FLEET_DIR) FLEETSYNC=$(BIN)/fleetsync GITSERVE=$(BIN)/gitserve SOAK_SECONDS=$(SOAK_SECONDS) \
	  ./hack/soak.sh; status=$$?; $(GO) run ./hack/localfleet down --dir $(SOAK_FLEET_DIR); exit $$status

scale: build
	$(GO) build -o $(BIN)/gitserve ./hack/gitserve
	@$(GO) run ./hack/localfleet down --dir $(SCALE_FLEET_DIR) >/dev/null 2>&1 || true
	$(GO) run ./hack/localfleet up --dir $(SCALE_FLEET_DIR) --clusters $$(seq -f 'c%02g' -s, 1 $(SCALE_CLUSTERS))
	FLEET_DIR=$(SCALE_FLEET_DIR) FLEETSYNC=$(BIN)/fleetsync GITSERVE=$(BIN)/gitserve SCALE_CLUSTERS=$(SCALE_CLUSTERS) SCALE_APPS=$(SCALE_APPS) SCALE_OBJECTS=$(SCALE_OBJECTS) SCALE_REPLICAS=$(SCALE_REPLICAS) \
	  ./hack/scale.sh; status=$$?; $(GO) run ./hack/localfleet down --dir $(SCALE_FLEET_DIR); exit $$status

# demo-down: stop the demo's daemon and git server, then the local fleet.
demo-down:
	@for p in $(FLEET_DIR)/demo/fleetsync.pid $(FLEET_DIR)/demo/gitserve.pid; do \
	  [ -f $$p ] && kill $$(cat $$p) 2>/dev/null; rm -f $$p; done; true
	$(GO) run ./hack/localfleet down --dir $(FLEET_DIR)

clean:
	rm -rf $(BIN) out
