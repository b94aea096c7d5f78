# Blackbox: `make run` starts the gateway on the embedded default; `make test` runs the whole suite.
GO ?= go
BIN := bin/blackbox

.PHONY: build run carrier test vet race bench clean

build:
	$(GO) build -o $(BIN) ./cmd/blackbox

run: build
	./$(BIN) serve --config configs/dev.yaml

# carrier: the demo tenant's trunk (127.0.0.2:5080): SIPp answers every call
# and, after the consent announcement, plays a 1 kHz tone; until interrupted.
carrier:
	sipp -sf testdata/sipp/demo-carrier.xml -i 127.0.0.2 -p 5080 -mi 127.0.0.2 -mp 6000 \
	  -key pt 0 -key codec PCMU -key audio testdata/audio/tone-1000-pcmu.pcap -nostdin -trace_err

test: build vet
	$(GO) test -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./media/... ./recorder/... ./policy/...

clean:
	rm -rf bin var
