GO ?= go

.PHONY: all help test test-faults redis mocks lint bench run sample fuzz

## all: lint, then test (the default goal).
all: lint test

## help: every target and what it does.
help:
	@awk '/^## [a-z-]+:/ { t = $$2; sub(/:$$/, "", t); sub(/^## [^:]*: */, ""); printf "  %-12s %s\n", t, $$0; more = 1; next } more && /^## / { sub(/^## /, ""); printf "  %-12s %s\n", "", $$0; next } { more = 0 }' $(MAKEFILE_LIST)

## test: every test, with the race detector, against real redis-server processes;
## the Redis adapter and the fault suite run on both transports (subtests pipeline and pool).
test: redis
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) test -race -count=1 ./...
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 10s ./internal/webhook/

## test-faults: the fault-injection suite at full size, with its results table.
test-faults: redis
	$(GO) test -race -count=1 -v -run . ./internal/faults/ -args -full

## redis: install Debian's redis-server when it is missing (the tests start their own).
redis:
	@scripts/ensure-redis.sh

## mocks: regenerate the gomock mocks of the ports.
mocks:
	$(GO) generate ./ports/...

## lint: formatting, vet, staticcheck, go.mod and go.sum tidy (in both modules),
## domain's import direction, mocks up to date.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	$(GO) tool staticcheck ./...
# bench/ is checked by the same staticcheck binary, pinned by the tool directive in ./go.mod.
	sc=$$($(GO) tool -n staticcheck) && cd bench && $$sc ./...
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff
	@scripts/check-imports.sh
	@scripts/check-mocks.sh

## bench: Go benchmarks of the hot paths (memory and Redis), then bench/: the module against
## rueidis, redis-benchmark and x/oauth2 on its own redis-server, one Markdown table per measurement.
bench: redis
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd bench && $(GO) run . $(BENCHFLAGS)

## run: the connector on 127.0.0.1:8080 with the memory store, log delivery, a development app secret and tenant "demo".
run:
	@$(GO) run ./cmd/connector -config cmd/connector/dev.yaml

## sample: sign testdata/whatsapp/text-message.json and POST it twice to `make run` (honours HTTP_ADDR).
sample:
	@GO="$(GO)" scripts/sample.sh

## fuzz: a longer fuzz run of the webhook parser.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 1m ./internal/webhook/
