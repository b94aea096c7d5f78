# Blackbox: `make run` starts the gateway on the embedded default; `make test` runs the whole suite.
GO ?= go
BIN := bin/blackbox

.PHONY: build run carrier test vet bench clean

build:
	$(GO) build -o $(BIN) ./cmd/blackbox

run: build
	./$(BIN) serve --config configs/dev.yaml

# carrier: the demo tenant's trunk (127.0.0.2:5080): SIPp answers every call
# and, after the consent announcement, plays a 1 kHz tone; until interrupted.
carrier:
	sipp -sf testdata/sipp/demo-carrier.xml -i 127.0.0.2 -p 5080 -mi 127.0.0.2 -mp 6000 \
	  -key pt 0 -key codec PCMU -key audio testdata/audio/tone-1000-pcmu.pcap -nostdin -trace_err

# The packages that share state across goroutines run under the race
# detector; the CLI, config and end-to-end tests (which drive the built
# binary) run plain.
RACE_PKGS := ./store/... ./sip/... ./media/... ./recorder/... ./policy/... ./api/...
PLAIN_PKGS = $(shell $(GO) list ./... | grep -v -E '/blackbox/(store|sip|media|recorder|policy|api)(/|$$)')

test: build vet
	$(GO) test -count=1 -timeout 20m -race $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m $(PLAIN_PKGS)

vet:
	$(GO) vet ./...

# bench prints the performance figures: relay ns and allocs per packet,
# recorder cost per frame pair and bytes per recording, policy decision
# p50/p99, store and API latencies.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./media/... ./recorder/... ./policy/... ./store/... ./api/...

clean:
	rm -rf bin var
