# labcloud — build, test and run. `sudo make up` to run, `sudo make test` to test.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
STATE_DIR ?= /var/lib/labcloud
LISTEN    ?= 127.0.0.1:7420
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/labcloud/labcloud/internal/version.Version=$(VERSION)
BIN       := bin

# Debian packages the project needs now: etcd for the external-etcd store
# tests, vagrant to validate the Vagrantfile, curl for `make up`, sudo so the
# README's `sudo make test` works for root too, python3 + the aws CLI/boto3
# fallbacks for the end-to-end tests when the pip ones are missing; QEMU,
# qemu-img, kmod, e2fsprogs and dpkg/apt tools for the hypervisor and the
# image builder (which downloads the guest's own packages with apt-get
# download), iproute2 and openssh-client for the boot tests.
DEB_PACKAGES := etcd-server vagrant curl sudo ca-certificates git make gcc python3 \
	qemu-system-x86 qemu-utils busybox-static kmod e2fsprogs iproute2 openssh-client xz-utils cpio \
	libvirt-daemon libvirt-daemon-driver-qemu debootstrap nftables iputils-ping netcat-openbsd

.PHONY: all deps build test test-unit bench up down vet clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! command -v aws >/dev/null 2>&1; then missing="$$missing awscli"; fi; \
	if ! python3 -c 'import boto3' >/dev/null 2>&1; then missing="$$missing python3-boto3"; fi; \
	if [ -n "$$missing" ] || [ -z "$$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then \
		apt-get update -qq; \
	fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "Debian packages: all present"; fi
	$(GO) mod download

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/labcloudd ./cmd/labcloudd
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/labcloud ./cmd/labcloud

vet:
	$(GO) vet ./...
	./.ci/check-imports
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted: $$unformatted"; exit 1; fi

# All tests. As root the integration tests (real etcd, real labcloudd, the
# aws CLI, boto3, aws-sdk-go-v2) run too; they never skip in CI.
test: vet
	$(GO) test -count=1 -timeout 40m ./...

# Benchmarks: speed targets live here, never in timed tests.
bench:
	$(GO) test -run '^$$' -bench 'DescribeRegions|AuthorizedCall' -benchtime 2000x -timeout 30m ./internal/e2e/
	$(GO) test -run '^$$' -bench 'Decide' ./iamd/policy/
	$(GO) test -run '^$$' -bench . ./netfab/nft/
	$(GO) test -run '^$$' -bench 'Snapshot' -benchtime 1x ./blockdev/qcow2/
	$(GO) test -run '^$$' -bench 'LaunchToSSH|ConcurrentLaunch|DaemonRSS|EBSIOPS' -benchtime 1x -timeout 60m ./internal/e2e/

up: build
	@mkdir -p $(STATE_DIR)
	@if [ -f $(STATE_DIR)/labcloudd.pid ] && kill -0 $$(cat $(STATE_DIR)/labcloudd.pid) 2>/dev/null; then \
		echo "labcloudd already running (pid $$(cat $(STATE_DIR)/labcloudd.pid))"; \
	else \
		rm -f $(STATE_DIR)/endpoint; \
		setsid nohup $(BIN)/labcloudd serve --state-dir $(STATE_DIR) --listen $(LISTEN) >>$(STATE_DIR)/labcloudd.log 2>&1 < /dev/null & \
		echo $$! > $(STATE_DIR)/labcloudd.pid; \
	fi
	@for i in $$(seq 1 600); do \
		if [ -f $(STATE_DIR)/endpoint ] && curl -sf "$$(cat $(STATE_DIR)/endpoint)/healthz" >/dev/null; then break; fi; \
		if ! kill -0 $$(cat $(STATE_DIR)/labcloudd.pid) 2>/dev/null; then echo "labcloudd exited; last log lines:"; tail -20 $(STATE_DIR)/labcloudd.log; exit 1; fi; \
		sleep 0.1; \
	done; \
	[ -f $(STATE_DIR)/endpoint ] || { echo "labcloudd did not become healthy in 60s; see $(STATE_DIR)/labcloudd.log"; exit 1; }
	@imgs=$$($(BIN)/labcloud --state-dir $(STATE_DIR) images) || { echo "labcloud images failed; see $(STATE_DIR)/labcloudd.log"; exit 1; }; \
	if echo "$$imgs" | awk '$$2 == "labcloud-tiny"' | grep -q .; then \
		echo "image labcloud-tiny: $$(echo "$$imgs" | awk '$$2 == "labcloud-tiny" {print $$1; exit}')"; \
	else \
		echo "building and registering labcloud-tiny (once)..."; \
		ami=$$($(BIN)/labcloud --state-dir $(STATE_DIR) image build labcloud-tiny --register) || exit 1; \
		echo "image labcloud-tiny: $$ami"; \
	fi
	@echo "labcloudd is up."
	@echo "  endpoint:    $$(cat $(STATE_DIR)/endpoint)"
	@echo "  credentials: $(STATE_DIR)/admin-credentials (profile labcloud)"
	@echo "  log:         $(STATE_DIR)/labcloudd.log"
	@echo "Try:"
	@echo "  AWS_SHARED_CREDENTIALS_FILE=$(STATE_DIR)/admin-credentials aws --profile labcloud --endpoint-url $$(cat $(STATE_DIR)/endpoint) ec2 describe-availability-zones"

down:
	@if [ -f $(STATE_DIR)/labcloudd.pid ] && kill $$(cat $(STATE_DIR)/labcloudd.pid) 2>/dev/null; then \
		pid=$$(cat $(STATE_DIR)/labcloudd.pid); \
		for i in $$(seq 1 100); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
		rm -f $(STATE_DIR)/labcloudd.pid; echo "labcloudd stopped"; \
	else echo "labcloudd is not running"; fi

clean:
	rm -rf $(BIN)
