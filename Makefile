# ulp: user-space live patching. `make` builds, `make test` runs every test
# tier (installing what the tests need first, when run as root), `make demo`
# shows a live patch on a running program.
GO ?= go
CC ?= cc
BUILD := build
FUZZTIME ?= 60s
# CI and `make test` turn a missing test capability into a failure, not a skip.
ULP_TEST_REQUIRE ?= all
export ULP_TEST_REQUIRE
export ULP_BUILD_DIR := $(abspath $(BUILD))

LIBPULP_CFLAGS := -fPIC -fvisibility=hidden -O2 -g -Wall -Wextra -Werror \
	-fno-stack-protector -fcf-protection=full -D_GNU_SOURCE
LIBPULP_LDFLAGS := -shared -nostartfiles -Wl,--version-script=libpulp/libpulp.map \
	-Wl,-soname,libpulp.so.0 -Wl,--build-id -Wl,-z,now -Wl,-z,relro
LIBPULP_SRCS := $(wildcard libpulp/*.c)
GO_SRCS := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum

# Packages the tests need, from Debian.
APT_PACKAGES := gcc g++ make binutils libc6-dev libssl-dev openssh-server openssh-client \
	iproute2 procps strace util-linux

.PHONY: all build deps test test-unit fuzz fuzz-short bench demo vet clean

all: build

build: $(BUILD)/libpulp.so.0 $(BUILD)/ulp $(BUILD)/ulpfleet

$(BUILD)/libpulp.so.0: $(LIBPULP_SRCS) $(wildcard libpulp/*.h) libpulp/libpulp.map
	@mkdir -p $(BUILD)
	$(CC) $(LIBPULP_CFLAGS) $(LIBPULP_LDFLAGS) -o $@ $(LIBPULP_SRCS)

$(BUILD)/ulp: $(GO_SRCS)
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/ulp

# ulpfleet embeds the static agent: agentbin/bin/ulp is a copy of build/ulp.
$(BUILD)/ulpfleet: $(BUILD)/ulp $(GO_SRCS)
	@mkdir -p agentbin/bin
	cp $(BUILD)/ulp agentbin/bin/ulp
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/ulpfleet

# deps installs the Debian packages the tests need (only when missing; needs root).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else echo "warning: missing packages:$$missing (run make test as root to install them)"; fi; \
	fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

test: deps build vet
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

# fuzz runs every Fuzz target of the module for FUZZTIME each. Minimizing a
# new interesting input is capped at 1s: Go's byte minimizer is quadratic, and
# on an ELF seed of a few KiB it would otherwise use the whole FUZZTIME.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg || exit 1; \
		done; \
	done

bench: build
	$(GO) run ./internal/bench

demo: deps build
	$(GO) run ./internal/demo

clean:
	rm -rf $(BUILD) agentbin/bin/ulp
