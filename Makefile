# quotad — `make run` starts a node, `make test` runs every test. Both install what
# they need (Go modules, the buf CLI from npm, a Python virtualenv in .venv) into
# this checkout.

GO          ?= go
TOOLS       := $(CURDIR)/.tools
BUF_VERSION := 1.75.0
BUF         := $(TOOLS)/node_modules/.bin/buf
BIN         := $(CURDIR)/bin
PYTHON3     ?= python3
VENV        := $(CURDIR)/.venv
PY          := $(VENV)/bin/python
PYCLIENT    := $(CURDIR)/clients/python
PYPROTO     := $(PYCLIENT)/src/quotad/_proto

STATICCHECK := $(TOOLS)/bin/staticcheck
DEADCODE    := $(TOOLS)/bin/deadcode
GRPCURL     := $(TOOLS)/bin/grpcurl

.PHONY: all build install run sim test lint vet fmt-check staticcheck deadcode tidy-check buf-lint py-lint generate check-generated go-test py-test py-generate bench bench-cluster bench-go grpcurl clean

all: build

build:
	$(GO) build -o $(BIN)/quotad ./cmd/quotad

## install: the quotad binary into $(PREFIX)/bin (default /usr/local).
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/quotad $(DESTDIR)$(PREFIX)/bin/quotad

## run: a single node with the example pools (no etcd, no peers).
run: build
	$(BIN)/quotad serve --config examples/quotad.yaml --state-dir $(CURDIR)/.state

## sim: the provider simulator on 127.0.0.1:7080, OpenAI- and Anthropic-shaped
## (the README's Python example calls it through quotad).
sim:
	$(GO) build -o $(BIN)/providersim ./bench/cmd/providersim
	$(BIN)/providersim -listen 127.0.0.1:7080

## test: lint, generated-code check, every Go test under the race detector, then
## the Python client's tests.
test: lint check-generated go-test py-test

lint: fmt-check vet staticcheck deadcode tidy-check buf-lint py-lint

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The Go tools lint runs are pinned in internal/tools/go.mod.
$(STATICCHECK) $(DEADCODE) $(GRPCURL): internal/tools/go.mod internal/tools/go.sum
	cd internal/tools && $(GO) build -o $(TOOLS)/bin/ honnef.co/go/tools/cmd/staticcheck \
		golang.org/x/tools/cmd/deadcode github.com/fullstorydev/grpcurl/cmd/grpcurl

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

# deadcode: no function is unreachable from main or from a test (examples are run
# by go test but are no roots for deadcode).
deadcode: $(DEADCODE)
	@out=$$($(DEADCODE) -test ./... | grep -v 'unreachable func: Example'); \
	if [ -n "$$out" ]; then echo "unreachable code:"; echo "$$out"; exit 1; fi

tidy-check:
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { $(GO) mod tidy -diff; echo "go.mod is not tidy: run go mod tidy"; exit 1; }
	@cd internal/tools && { $(GO) mod tidy -diff >/dev/null 2>&1 || { $(GO) mod tidy -diff; echo "internal/tools/go.mod is not tidy"; exit 1; }; }

# py-lint: mypy (pinned in requirements-dev.txt) over the Python client, as
# configured in its pyproject.toml.
py-lint: $(VENV)/.stamp
	cd $(PYCLIENT) && $(PY) -m mypy

$(BUF):
	npm install --no-audit --no-fund --silent --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

buf-lint: $(BUF)
	$(BUF) lint

## generate: regenerate the gRPC code from proto/, Go and Python (offline once the
## tools are installed).
generate: $(BUF) $(VENV)/.stamp
	$(BUF) generate
	$(MAKE) --no-print-directory py-generate PYGEN_OUT=$(PYPROTO)

# py-generate writes the Python stubs into $(PYGEN_OUT) with grpcio-tools' bundled
# protoc, imports made package-relative so the stubs live inside quotad._proto.
PYGEN_OUT ?= $(PYPROTO)
py-generate: $(VENV)/.stamp
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp \
		proto/quotad/v1/quotad.proto proto/quotad/v1/errors.proto && \
	mkdir -p $(PYGEN_OUT) && \
	for f in quotad_pb2.py quotad_pb2.pyi quotad_pb2_grpc.py errors_pb2.py errors_pb2.pyi; do \
		sed -e 's/^from quotad\.v1 import /from . import /' $$tmp/quotad/v1/$$f > $(PYGEN_OUT)/$$f || exit 1; \
	done

## check-generated: the committed generated code is what `make generate` produces.
check-generated: $(BUF) $(VENV)/.stamp
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(BUF) generate -o $$tmp && \
	for f in $$(cd $$tmp && find . -name '*.pb.go'); do \
		cmp -s $$tmp/$$f $$f || { echo "$$f is out of date: run make generate"; exit 1; }; \
	done && \
	$(MAKE) --no-print-directory py-generate PYGEN_OUT=$$tmp/py && \
	for f in $$(cd $$tmp/py && ls); do \
		cmp -s $$tmp/py/$$f $(PYPROTO)/$$f || { echo "$(PYPROTO)/$$f is out of date: run make generate"; exit 1; }; \
	done; echo "generated code is up to date"

# Every package runs under the race detector, against one quotad binary built
# here for all of them (QUOTAD_BIN). The cluster's fault simulations run a few
# seeds under -race and every seed without it (the race detector slows them
# tenfold and finds nothing there).
go-test: build
	QUOTAD_BIN=$(BIN)/quotad $(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'Sim|Quorum' ./cluster

# The virtualenv, with the pinned versions of clients/python/requirements-dev.txt and
# the client itself (editable); rebuilt when either file changes.
$(VENV)/.stamp: $(PYCLIENT)/requirements-dev.txt $(PYCLIENT)/pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(PYCLIENT)/requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e $(PYCLIENT)
	touch $@

## py-test: the Python client's tests, against real quotad and providersim processes.
## pytest's exit code 5 (no test collected) fails like any other.
py-test: $(VENV)/.stamp
	$(GO) build -o $(BIN)/quotad ./cmd/quotad
	$(GO) build -o $(BIN)/providersim ./bench/cmd/providersim
	cd $(PYCLIENT) && QUOTAD_BIN=$(BIN)/quotad PROVIDERSIM_BIN=$(BIN)/providersim \
		$(PY) -m pytest -q -p no:cacheprovider tests

## grpcurl: builds .tools/bin/grpcurl (pinned in internal/tools/go.mod) for the README's walk-through.
grpcurl: $(GRPCURL)

## bench: the standard benchmark scenarios against the provider simulator, every
## mode side by side; prints the table and writes bench/results/latest.json
## (see bench/README.md).
bench: build
	$(GO) build -o $(BIN)/quotad-bench ./bench/cmd/quotad-bench
	$(BIN)/quotad-bench -quotad $(BIN)/quotad -json bench/results/latest.json

## bench-cluster: the cluster benchmarks against 3 quotad nodes (accuracy and
## failover under gubernator's load, forwarded against local calls, the standard
## scenario's quotad mode); about 5 minutes. Prints the tables and writes
## bench/results/cluster.json (see bench/README.md, "Cluster").
bench-cluster: build
	$(GO) build -o $(BIN)/quotad-bench ./bench/cmd/quotad-bench
	$(BIN)/quotad-bench -quotad $(BIN)/quotad -scenarios cluster-accuracy,cluster-failover,cluster-forward,standard \
		-modes quotad -quotad-nodes 3 -json bench/results/cluster.json

## bench-go: the Go micro-benchmarks of the engine and the server.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./limiter ./tokens ./server/...

clean:
	rm -rf $(BIN) $(TOOLS) $(VENV)
