# zmy-responder build, test and benchmark entry points. `make test` is what CI runs (.ci/run).

GO       ?= go
BIN      := bin
PKG      := github.com/zmyorg/zmy-responder
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS  := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
            -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(shell id -un 2>/dev/null)@$(shell hostname 2>/dev/null) \
            -X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

# Debian packages whose binaries tests run against real servers: binary:package pairs. An
# alternative binary name of the same package is a second pair (alertmanager is packaged as
# prometheus-alertmanager).
DEB_BINARIES := promtool:prometheus prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager \
                amtool:prometheus-alertmanager etcd:etcd-server redis-server:redis-server \
                chromium:chromium

# Test suites `make test` runs after `test-go`. Other parts of the repository append to it
# (TEST_TARGETS += test-rules) together with their own target.
TEST_TARGETS := lint fuzz-short test-rules test-deploy test-zmyctl-driver

GO_TEST_TIMEOUT ?= 20m
# A count, not a duration: a duration's deadline races Go's fuzz coordinator on a loaded machine
# (a bare "context deadline exceeded" with no crasher; go.dev/issue/75804, fixed in Go 1.27).
FUZZ_TIME       ?= 20000x

.PHONY: all build test test-go fuzz-short test-rules test-deploy test-zmyctl-driver deps lint bench bench-webhook \
	bench-sim bench-driver bench-detect bench-remediate bench-e2e bench-firing run demo e2e clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Sequenced with sub-makes so that `make -j test` still installs, then builds, then tests.
test: deps
	$(MAKE) build
	$(MAKE) test-go
	$(MAKE) $(TEST_TARGETS)

test-go:
	$(GO) test -timeout $(GO_TEST_TIMEOUT) ./...

# A brief run of the webhook decoding fuzz target (its seed corpus runs in test-go as well).
fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeWebhook$$' -fuzztime $(FUZZ_TIME) ./receiver/

# test-go runs every test on the simulator's generated config, which uses the admin-API driver;
# this runs the runbook's safety tests (everything that talks to simulated nodes through the
# driver: crashes with commands in flight, actor attribution, two responders, the SOP order)
# once more on the zmyctl driver.
SAFETY_TESTS := TestThreeWaySplitNeedsHuman|TestNotConfirmedMutatesNothing|TestDuplicateDeliveriesOneRun|TestGuardsMutateNothing|TestBlastRadiusMutatesNothing|TestCrashAtEachPointCompletesAfterRestart|TestCrashWithAMutationInFlight|TestNodeResumedByHandIsRecontained|TestTwoRespondersOnOneCluster|TestRecoverNeedsEverySnapshotEvenIfTheGateLies|TestOnlyTheLeaderActs|TestPartition32Recovers
test-zmyctl-driver:
	@n=$$($(GO) test -list '^($(SAFETY_TESTS))$$' ./remediate/ | grep -c '^Test'); want=$$(echo '$(SAFETY_TESTS)' | tr '|' '\n' | wc -l); \
	if [ "$$n" != "$$want" ]; then echo "test-zmyctl-driver: $$n of the $$want SAFETY_TESTS exist; a test was renamed?"; exit 1; fi
	ZMY_TEST_DRIVER=zmyctl $(GO) test -timeout $(GO_TEST_TIMEOUT) -run '^($(SAFETY_TESTS))$$' ./remediate/

# promtool check/test on rules/ (also covered by rules/rules_test.go; this is the plain form).
test-rules:
	rules/check.sh

# amtool/promtool on deploy/, the generated PrometheusRule, the static build the Dockerfile ships.
test-deploy:
	deploy/check.sh

# Installs the Debian packages of DEB_BINARIES whose binary is missing (apt-get update first),
# as root or through sudo. Nothing happens when everything is there.
deps:
	@missing=""; \
	for pair in $(DEB_BINARIES); do \
		b=$${pair%%:*}; p=$${pair##*:}; \
		if [ "$$b" = prometheus-alertmanager ] && command -v alertmanager >/dev/null 2>&1; then continue; fi; \
		command -v "$$b" >/dev/null 2>&1 || case " $$missing " in *" $$p "*) ;; *) missing="$$missing $$p";; esac; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all test binaries present"; exit 0; fi; \
	sudo=""; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
	echo "deps: installing$$missing"; \
	$$sudo apt-get update && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $$missing

lint:
	@files=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	@sc=$$(command -v staticcheck || echo "$$($(GO) env GOPATH)/bin/staticcheck"); \
	if [ ! -x "$$sc" ]; then $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2 || true; fi; \
	if [ -x "$$sc" ]; then echo "$$sc ./..."; "$$sc" ./...; else echo "lint: staticcheck could not be installed; skipped"; fi

# Every figure the issues name (method and results in BENCHMARKS.md). Each part can run alone.
bench: bench-webhook bench-sim bench-driver bench-detect bench-remediate bench-e2e bench-firing

# Webhook ingest throughput and latency against a do-nothing handler, idle RSS, and ingest with
# the bbolt and etcd storage backends (Debian etcd-server, from deps).
bench-webhook: build deps
	$(BIN)/zmy-webhook-bench --responder=$(BIN)/zmy-responder

# The simulator holding 200 nodes under write load.
bench-sim: build
	$(BIN)/zmysim bench --nodes 200 --write-rate 1000 --duration 20s --scrapes 500

# Node driver latency per command: zmyctl through the simulator's ctl, and the admin API.
bench-driver:
	$(GO) test -run '^$$' -bench BenchmarkDriverSimulator -benchtime 300x ./internal/zmy/

# Verdict latency for 5, 50 and 200 nodes.
bench-detect:
	$(GO) test -run '^$$' -bench '^BenchmarkConfirm$$' -benchtime 20x -timeout 30m ./detect/

# Webhook received → every node verified suspended, for 5, 50 and 200 nodes.
bench-remediate:
	$(GO) test -run '^$$' -bench TimeToContainment -benchtime 8x -timeout 30m ./remediate/

# Partition → all nodes suspended through real Prometheus and Alertmanager (detection + response).
bench-e2e: deps
	$(GO) test -run '^$$' -bench PartitionToContainment -benchtime 3x -timeout 30m ./internal/e2e/

# Partition → ZMY_Quorum_Down and ZMY_Network_Partition firing in a real Prometheus, and heal →
# gone, at the scrape/evaluation intervals of each shipped configuration (1s, 5s, 15s).
bench-firing: deps
	$(GO) test -run '^$$' -bench FiringTime -benchtime 3x -timeout 30m ./rules/

# The daemon on loopback with the example configuration.
run: build
	$(BIN)/zmy-responder --config.file=deploy/zmy-responder.example.yml \
		--web.listen-address=127.0.0.1:9095 --grpc.listen-address=127.0.0.1:9096 --storage.path=data/

# Owned by the demo and end-to-end parts of the repository. DEMO_ARGS: --keep (leave it running
# until Ctrl-C), -v (every node command in full).
demo: build
	$(BIN)/zmy-demo --bin-dir=$(BIN) $(DEMO_ARGS)

e2e: build
	$(GO) test -timeout $(GO_TEST_TIMEOUT) ./internal/e2e/

clean:
	rm -rf $(BIN)
