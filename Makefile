# Blackbox: `make run` starts the gateway on the embedded default; `make test` runs the whole suite.
GO ?= go
BIN := bin/blackbox

.PHONY: build run test vet race bench clean

build:
	$(GO) build -o $(BIN) ./cmd/blackbox

run: build
	./$(BIN) serve --config configs/dev.yaml

test: build vet
	$(GO) test -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./media/... ./recorder/... ./policy/...

clean:
	rm -rf bin var
