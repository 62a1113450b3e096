# quotad — `make run` starts a node, `make test` runs every test. Both install what
# they need (Go modules, the buf CLI from npm) into this checkout.

GO          ?= go
TOOLS       := $(CURDIR)/.tools
BUF_VERSION := 1.75.0
BUF         := $(TOOLS)/node_modules/.bin/buf
BIN         := $(CURDIR)/bin

.PHONY: all build run test lint vet fmt-check buf-lint generate check-generated go-test bench grpcurl clean

all: build

build:
	$(GO) build -o $(BIN)/quotad ./cmd/quotad

## run: a single node with the example pools (no etcd, no peers).
run: build
	$(BIN)/quotad serve --config examples/quotad.yaml --state-dir $(CURDIR)/.state

## test: lint, generated-code check, and every test under the race detector.
test: lint check-generated go-test

lint: fmt-check vet buf-lint

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

$(BUF):
	npm install --no-audit --no-fund --silent --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

buf-lint: $(BUF)
	$(BUF) lint

## generate: regenerate the gRPC code from proto/ (offline once the tools are installed).
generate: $(BUF)
	$(BUF) generate

## check-generated: the committed generated code is what `make generate` produces.
check-generated: $(BUF)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(BUF) generate -o $$tmp && \
	for f in $$(cd $$tmp && find . -name '*.pb.go'); do \
		cmp -s $$tmp/$$f $$f || { echo "$$f is out of date: run make generate"; exit 1; }; \
	done; echo "generated code is up to date"

go-test:
	$(GO) test -race -count=1 ./...

## grpcurl: builds .tools/bin/grpcurl (pinned in internal/tools/go.mod) for the README's walk-through.
grpcurl:
	cd internal/tools && $(GO) build -o $(TOOLS)/bin/grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl

## bench: the engine and server benchmarks (see bench/README.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./server/...

clean:
	rm -rf $(BIN) $(TOOLS)
